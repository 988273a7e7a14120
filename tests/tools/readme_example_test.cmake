# Run by ctest (readme_shows_quick_start): the first C++ block of the README's "Embedding it"
# section is examples/quick_start.cpp, byte for byte, so the example a newcomer pastes is the
# one ctest builds against the installed package and runs.
#
#   cmake -DSOURCE_DIR=<repo> -P readme_example_test.cmake
cmake_minimum_required(VERSION 3.25)
file(READ ${SOURCE_DIR}/README.md readme)
file(READ ${SOURCE_DIR}/examples/quick_start.cpp example)
string(FIND "${readme}" "\n## Embedding it\n" at)
if(at LESS 0)
  message(FATAL_ERROR "README.md has no '## Embedding it' section")
endif()
string(SUBSTRING "${readme}" ${at} -1 section)
string(FIND "${section}" "\n```cpp\n" open)
if(open LESS 0)
  message(FATAL_ERROR "README.md's 'Embedding it' section has no ```cpp block")
endif()
math(EXPR open "${open} + 8")
string(SUBSTRING "${section}" ${open} -1 section)
string(FIND "${section}" "\n```\n" close)
math(EXPR close "${close} + 1")
string(SUBSTRING "${section}" 0 ${close} block)
if(NOT block STREQUAL example)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/readme_block.cpp "${block}")
  message(FATAL_ERROR "README.md's 'Embedding it' example differs from examples/quick_start.cpp "
                      "(the README's block is in ${CMAKE_CURRENT_BINARY_DIR}/readme_block.cpp)")
endif()
message(STATUS "ok: README.md shows examples/quick_start.cpp")
