// Kiln's version, defined once: CMake reads these three numbers.
#pragma once

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0

namespace kiln {
inline constexpr int version_major = KILN_VERSION_MAJOR;
inline constexpr int version_minor = KILN_VERSION_MINOR;
inline constexpr int version_patch = KILN_VERSION_PATCH;
/// "MAJOR.MINOR.PATCH" of the headers in use.
inline constexpr const char* version_string = "0.1.0";
}  // namespace kiln
