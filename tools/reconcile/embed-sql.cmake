# Turns tools/reconcile/sql/*.sql into a C array clinicmig-reconcile
# carries, so that the statements stay readable (and can be pasted into
# psql) while the binary needs no files beside it; sql.c cuts them into
# their "-- name:" sections.
# Usage: cmake -DSRC_DIR=... -DOUT=... -P embed-sql.cmake
file(GLOB files RELATIVE ${SRC_DIR} ${SRC_DIR}/*.sql)
list(SORT files)
set(body "/* generated from tools/reconcile/sql by embed-sql.cmake */\n")
string(APPEND body "#include <stddef.h>\n\n")
string(APPEND body "const char *const rc_sql_files[][2] = {\n")
foreach(f ${files})
  file(READ ${SRC_DIR}/${f} sql)
  string(REPLACE "\\" "\\\\" sql "${sql}")
  string(REPLACE "\"" "\\\"" sql "${sql}")
  string(REPLACE "\n" "\\n\"\n    \"" sql "${sql}")
  string(APPEND body "  {\"${f}\",\n    \"${sql}\"},\n")
endforeach()
string(APPEND body "  {NULL, NULL}\n};\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
