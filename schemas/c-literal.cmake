# cm_c_literal(VAR): the text in VAR as the body of a C string literal,
# one source line per line of text. For the embed scripts (migrations,
# Avro schemas, the worker's statements); the caller adds the outer quotes.
function(cm_c_literal var)
  set(t "${${var}}")
  string(REPLACE "\\" "\\\\" t "${t}")
  string(REPLACE "\"" "\\\"" t "${t}")
  string(REPLACE "\n" "\\n\"\n    \"" t "${t}")
  set(${var} "${t}" PARENT_SCOPE)
endfunction()
