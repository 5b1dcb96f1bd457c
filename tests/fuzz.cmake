# The decoder's libFuzzer target (and the reader of clinicmig's own Avro
# streams), built only with -DCM_FUZZ=ON and clang
# (tests/fuzz/run-fuzz.sh does both). The decoders (JSON and Avro, with
# the schema source), the JSON form of an event and the
# error and log code are compiled in directly instead of linking cmcore, so
# the target carries no C++ (libphonenumber) under the sanitizers.
if(CM_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR
      "CM_FUZZ needs clang: configure with CC=clang CXX=clang++")
  endif()
  add_executable(fuzz_decode
    ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz_decode.c
    ${CMAKE_SOURCE_DIR}/worker/decode.c
    ${CMAKE_SOURCE_DIR}/worker/decode_avro.c
    ${CMAKE_SOURCE_DIR}/worker/schemas.c
    ${CMAKE_SOURCE_DIR}/worker/avro_out.c
    ${CMAKE_SOURCE_DIR}/worker/text.c
    ${CMAKE_SOURCE_DIR}/worker/event_json.c
    ${CMAKE_SOURCE_DIR}/worker/value.c
    ${CMAKE_SOURCE_DIR}/worker/txsnap.c
    ${CMAKE_SOURCE_DIR}/worker/catalog.c
    ${CMAKE_SOURCE_DIR}/worker/err.c
    ${CMAKE_SOURCE_DIR}/worker/log.c)
  target_compile_options(fuzz_decode PRIVATE
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer -g)
  target_compile_definitions(fuzz_decode PRIVATE
    CM_FUZZ_SCHEMA_DIR="${CMAKE_SOURCE_DIR}/tests/data/decode-avro/schemas")
  target_link_options(fuzz_decode PRIVATE
    -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_decode PRIVATE PkgConfig::CJSON PkgConfig::AVRO
                      PkgConfig::CURL)
endif()
