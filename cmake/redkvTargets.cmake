# redkvTargets.cmake - the two libraries, compiled as the Makefile compiles them.
# (Included by the top CMakeLists.txt; REDKV_SOURCES and the options are set there.)

# C99 with the Makefile's feature macros and warnings.
function(redkv_compile_like_the_library target)
    set_target_properties(${target} PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON
                          C_EXTENSIONS OFF C_VISIBILITY_PRESET hidden)
    target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE
        $<$<BOOL:${REDKV_NO_THREADS}>:REDKV_NO_THREADS>
        $<$<BOOL:${REDKV_NO_CLUSTER}>:REDKV_NO_CLUSTER>
        $<$<BOOL:${REDKV_NO_SENTINEL}>:REDKV_NO_SENTINEL>
        $<$<BOOL:${REDKV_NO_CACHE}>:REDKV_NO_CACHE>
        $<$<BOOL:${REDKV_NO_TLS}>:REDKV_NO_TLS>
        $<$<STREQUAL:${REDKV_TLS},mbedtls>:REDKV_TLS_MBEDTLS>
        $<$<STREQUAL:${REDKV_TLS},openssl>:REDKV_TLS_OPENSSL>)
    if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wvla
                               $<$<BOOL:${REDKV_WERROR}>:-Werror>)
    endif()
endfunction()

if(NOT REDKV_NO_THREADS)
    set(THREADS_PREFER_PTHREAD_FLAG ON)
    find_package(Threads REQUIRED)
endif()
if(REDKV_TLS STREQUAL "openssl")
    find_package(OpenSSL REQUIRED)
endif()

# What the library needs besides libc: public for the static library (its users link
# them), private for the shared one.
set(redkv_deps "")
if(NOT REDKV_NO_THREADS)
    list(APPEND redkv_deps Threads::Threads)
endif()
if(REDKV_TLS STREQUAL "mbedtls")
    list(APPEND redkv_deps mbedtls mbedx509 mbedcrypto)
elseif(REDKV_TLS STREQUAL "openssl")
    list(APPEND redkv_deps OpenSSL::SSL OpenSSL::Crypto)
endif()

add_library(redkv SHARED ${REDKV_SOURCES})
add_library(redkv_static STATIC ${REDKV_SOURCES})
set_target_properties(redkv PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
set_target_properties(redkv_static PROPERTIES OUTPUT_NAME redkv EXPORT_NAME redkv_static)
target_link_libraries(redkv PRIVATE ${redkv_deps})
target_link_libraries(redkv_static PUBLIC ${redkv_deps})

foreach(lib redkv redkv_static)
    redkv_compile_like_the_library(${lib})
    target_include_directories(${lib}
        PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
               $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
        PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/resp ${CMAKE_CURRENT_SOURCE_DIR}/net
                ${CMAKE_CURRENT_SOURCE_DIR}/store)
endforeach()

# The names a find_package user sees, for add_subdirectory users too.
add_library(redkv::redkv ALIAS redkv)
add_library(redkv::redkv_static ALIAS redkv_static)
