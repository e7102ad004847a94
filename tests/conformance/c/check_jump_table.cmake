# cmake -DOBJDUMP=... -DELF=... -DFUNCTION=... -P check_jump_table.cmake
# Fails unless FUNCTION (or a clone of it gcc made, FUNCTION.constprop.0) in
# ELF jumps through a register other than ra: the switch's jump table, which
# c_runtime.c's checks then run through on both engines.
execute_process(COMMAND ${OBJDUMP} -d --no-show-raw-insn ${ELF} OUTPUT_VARIABLE listing RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${OBJDUMP} failed on ${ELF}")
endif()
string(REGEX MATCH "<${FUNCTION}[.>][^\n]*\n([^\n]+\n)*" body "${listing}")
if(body STREQUAL "")
  message(FATAL_ERROR "no function ${FUNCTION} in ${ELF}")
endif()
string(REGEX MATCH "\tjr\t[a-z0-9]+" jump "${body}")
if(jump STREQUAL "")
  message(FATAL_ERROR "${FUNCTION} in ${ELF} has no jump table (no jr): gcc turned the switch into something else\n${body}")
endif()
message(STATUS "${FUNCTION}: jump table dispatch `${jump}`")
