add_library(ringflow_warnings INTERFACE)
target_compile_options(ringflow_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wnull-dereference -Wdouble-promotion -Wformat=2
  -Wimplicit-fallthrough)
add_library(ringflow::warnings ALIAS ringflow_warnings)
