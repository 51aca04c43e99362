#ifndef KEYGATE_COPENSSL_SHIM_H
#define KEYGATE_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

// OSSL_PARAM_construct_* are functions, but OSSL_PARAM_END is a macro initializer.
static inline OSSL_PARAM kg_ossl_param_end(void) { OSSL_PARAM end = OSSL_PARAM_END; return end; }
#endif
