# Integration tests: real PostgreSQL, the local Kafka cluster, the worker.
# Each file tests/integration/NNNN-name.py is one ctest test.
find_program(CM_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
file(GLOB CM_INTEGRATION_TESTS CONFIGURE_DEPENDS
     ${CMAKE_CURRENT_SOURCE_DIR}/integration/[0-9][0-9][0-9][0-9]-*.py)
set(CM_SANITIZE_FLAG OFF)
if(CM_SANITIZE)
  set(CM_SANITIZE_FLAG ON)
endif()
foreach(t ${CM_INTEGRATION_TESTS})
  get_filename_component(name ${t} NAME_WE)
  add_test(NAME integration.${name} COMMAND ${CM_PYTHON3} ${t})
  set_tests_properties(integration.${name} PROPERTIES
    ENVIRONMENT "CM_BUILD_DIR=${CMAKE_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1;CM_SANITIZE=${CM_SANITIZE_FLAG}"
    SKIP_RETURN_CODE 77
    TIMEOUT 900
    LABELS integration)
endforeach()
