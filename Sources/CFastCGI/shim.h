#ifndef KEYGATE_CFASTCGI_SHIM_H
#define KEYGATE_CFASTCGI_SHIM_H
// libfcgi's request API. FCGX_FPrintF is variadic and cannot be imported: keygate
// writes whole buffers with FCGX_PutStr instead.
#include <fcgiapp.h>
#endif
