#ifndef KEYGATE_CPOSTGRESQL_SHIM_H
#define KEYGATE_CPOSTGRESQL_SHIM_H
#include <libpq-fe.h>
// Type OIDs live in server headers that libpq-dev does not install; the few keygate
// decodes are fixed by PostgreSQL's catalog and restated here.
enum {
    KG_BOOLOID = 16, KG_BYTEAOID = 17, KG_INT8OID = 20, KG_INT2OID = 21, KG_INT4OID = 23,
    KG_TEXTOID = 25, KG_JSONOID = 114, KG_FLOAT8OID = 701, KG_INETOID = 869, KG_CIDROID = 650,
    KG_VARCHAROID = 1043, KG_TIMESTAMPTZOID = 1184, KG_UUIDOID = 2950, KG_JSONBOID = 3802
};
#endif
