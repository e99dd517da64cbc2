# cmake.mk - the CMake build (CMakeLists.txt, cmake/) kept in step with this Makefile.
#
#   make cmake-check     build with CMake, install into $(BUILD)/cmake/prefix, build and run
#                        tests/cmake-consumer through find_package and add_subdirectory,
#                        compare CMake's source list with ours, try the switches
#                        (scripts/cmake-check.sh says what exactly)
#   make print-sources   the library's sources, as this Makefile builds them

print-sources:
	@printf '%s\n' $(LIB_SRC)

cmake-check:
	@command -v cmake >/dev/null || { echo "make cmake-check: cmake not found (apt-get install cmake)" >&2; exit 2; }
	MAKE="$(MAKE)" sh scripts/cmake-check.sh $(BUILD)/cmake

.PHONY: print-sources cmake-check
