# Turns worker/sql/<name>.sql into the C string cm_sql_<name> (cm_sql.c,
# declared in cm_sql.h), so that the worker carries its statements and
# each one stays a file that pastes into psql (README.md here).
# The leading "--" comment lines are dropped, and the trailing ";"; the
# psql variables :"cm" and :"v2" become @cm@ and @v2@, which
# cm_db_expand() replaces with the configured schema names.
# Usage: cmake -DSRC_DIR=... -DOUT_C=... -DOUT_H=... -P embed.cmake
include(${CMAKE_CURRENT_LIST_DIR}/../../schemas/c-literal.cmake)
file(GLOB files RELATIVE ${SRC_DIR} ${SRC_DIR}/*.sql)
list(SORT files)
set(c "/* generated from worker/sql by embed.cmake */\n")
string(APPEND c "#include \"cm_sql.h\"\n")
set(h "/* generated from worker/sql by embed.cmake */\n")
string(APPEND h "#ifndef CM_SQL_H\n#define CM_SQL_H\n\n")
foreach(f ${files})
  string(REGEX REPLACE "\\.sql$" "" name ${f})
  if(NOT name MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "worker/sql/${f}: name a statement [a-z][a-z0-9_]*")
  endif()
  file(READ ${SRC_DIR}/${f} sql)
  string(REGEX REPLACE "^(--[^\n]*\n)+" "" sql "${sql}")
  string(REGEX REPLACE "[ \t\r\n]*;[ \t\r\n]*$" "" sql "${sql}")
  string(REPLACE ":\"cm\"" "@cm@" sql "${sql}")
  string(REPLACE ":\"v2\"" "@v2@" sql "${sql}")
  if(sql MATCHES ":\"" OR sql MATCHES ";")
    message(FATAL_ERROR "worker/sql/${f}: one statement, and no psql "
                        "variable but :\"cm\" and :\"v2\"")
  endif()
  cm_c_literal(sql)
  string(APPEND c "\nconst char cm_sql_${name}[] =\n    \"${sql}\";\n")
  string(APPEND h "extern const char cm_sql_${name}[];\n")
endforeach()
string(APPEND h "\n#endif\n")
file(WRITE ${OUT_C}.tmp "${c}")
file(COPY_FILE ${OUT_C}.tmp ${OUT_C} ONLY_IF_DIFFERENT)
file(WRITE ${OUT_H}.tmp "${h}")
file(COPY_FILE ${OUT_H}.tmp ${OUT_H} ONLY_IF_DIFFERENT)
