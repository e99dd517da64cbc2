# redkvInstall.cmake - `cmake --install`: the libraries, headers (with the event-loop
# adapters), the tool, the man pages, pkg-config's redkv.pc and the CMake package
# (redkvConfig.cmake, its version file and the exported targets redkv::redkv and
# redkv::redkv_static).
include(CMakePackageConfigHelpers)

set(redkv_cmake_dir "${CMAKE_INSTALL_LIBDIR}/cmake/redkv")

install(TARGETS redkv redkv_static EXPORT redkvTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET redkv_cli)
    install(TARGETS redkv_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(FILES include/redkv.h include/resp.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
file(GLOB redkv_adapter_headers "${CMAKE_CURRENT_SOURCE_DIR}/include/redkv/adapters/*.h")
install(FILES ${redkv_adapter_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/redkv/adapters)
foreach(section 1 3)
    if(EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/doc/redkv.${section}")
        install(FILES doc/redkv.${section} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
    endif()
endforeach()

install(EXPORT redkvTargets NAMESPACE redkv:: DESTINATION ${redkv_cmake_dir})
configure_package_config_file(cmake/redkvConfig.cmake.in
    "${CMAKE_CURRENT_BINARY_DIR}/redkvConfig.cmake" INSTALL_DESTINATION ${redkv_cmake_dir})
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/redkvConfigVersion.cmake"
    COMPATIBILITY SameMajorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/redkvConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/redkvConfigVersion.cmake"
        DESTINATION ${redkv_cmake_dir})

# The same redkv.pc as `make install` writes.
set(redkv_pc_private "")
if(NOT REDKV_NO_THREADS)
    set(redkv_pc_private "-lpthread")
endif()
if(REDKV_TLS STREQUAL "mbedtls")
    string(APPEND redkv_pc_private " -lmbedtls -lmbedx509 -lmbedcrypto")
elseif(REDKV_TLS STREQUAL "openssl")
    string(APPEND redkv_pc_private " -lssl -lcrypto")
endif()
configure_file(cmake/redkv.pc.in "${CMAKE_CURRENT_BINARY_DIR}/redkv.pc" @ONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/redkv.pc" DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
