# Lists what the HTTP module (strata-http.so) takes from the strata executable:
# its undefined symbols of strata's own code. Writes them as a linker script of
# EXTERN lines (which keeps each in the executable, pulled from the static
# libraries even where the executable itself calls none) and as a dynamic list
# (which exports just these). Run by CMake: -DNM= -DMODULE= -DSCRIPT= -DLIST=
execute_process(COMMAND ${NM} --dynamic --undefined-only --format=just-symbols ${MODULE}
                OUTPUT_VARIABLE undefined COMMAND_ERROR_IS_FATAL ANY)
string(REPLACE "\n" ";" undefined "${undefined}")
set(extern "")
set(exported "{\n")
foreach(symbol ${undefined})
  if(symbol MATCHES "6strata" AND NOT symbol MATCHES "@")
    string(APPEND extern "EXTERN(${symbol})\n")
    string(APPEND exported "  ${symbol};\n")
  endif()
endforeach()
string(APPEND exported "};\n")
# Rewritten only when changed, so the executable relinks only then.
file(CONFIGURE OUTPUT ${SCRIPT} CONTENT "${extern}" @ONLY)
file(CONFIGURE OUTPUT ${LIST} CONTENT "${exported}" @ONLY)
