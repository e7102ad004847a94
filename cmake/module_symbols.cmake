# Lists what the modules (strata-http.so, strata-tls.so) take from the strata
# executable: their undefined symbols of strata's own code. Writes them as a linker
# script of EXTERN lines (which keeps each in the executable, pulled from the static
# libraries even where the executable itself calls none) and as a dynamic list
# (which exports just these). Run by CMake: -DNM= -DMODULES=a;b -DSCRIPT= -DLIST=
set(undefined "")
foreach(module ${MODULES})
  execute_process(COMMAND ${NM} --dynamic --undefined-only --format=just-symbols ${module}
                  OUTPUT_VARIABLE symbols COMMAND_ERROR_IS_FATAL ANY)
  string(REPLACE "\n" ";" symbols "${symbols}")
  list(APPEND undefined ${symbols})
endforeach()
list(REMOVE_DUPLICATES undefined)
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
