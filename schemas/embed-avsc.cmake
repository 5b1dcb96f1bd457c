# Turns schemas/NAME.avsc into C strings the binaries carry (cm_avsc() in
# include/clinicmig/cm_avro_out.h), so that an installed binary registers
# its Avro schemas without schema files beside it.
# Usage: cmake -DSRC_DIR=... -DOUT=... -P embed-avsc.cmake
include(${CMAKE_CURRENT_LIST_DIR}/c-literal.cmake)
file(GLOB files RELATIVE ${SRC_DIR} ${SRC_DIR}/*.avsc)
list(SORT files)
set(names "")
set(texts "")
foreach(f ${files})
  file(READ ${SRC_DIR}/${f} text)
  string(REGEX REPLACE "\\.avsc$" "" name ${f})
  cm_c_literal(text)
  string(APPEND names "  \"${name}\",\n")
  string(APPEND texts "  \"${text}\",\n")
endforeach()
set(body "/* generated from schemas/NAME.avsc by embed-avsc.cmake */\n")
string(APPEND body "#include <stddef.h>\n\n")
string(APPEND body "extern const char *const cm_avsc_names[];\n")
string(APPEND body "extern const char *const cm_avsc_texts[];\n\n")
string(APPEND body "const char *const cm_avsc_names[] = {\n${names}  NULL\n};\n")
string(APPEND body "const char *const cm_avsc_texts[] = {\n${texts}  NULL\n};\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
