// KILN_API marks the public API; everything else is hidden in shared builds.
#pragma once

#if defined(_WIN32)
#if defined(KILN_BUILDING_SHARED)
#define KILN_API __declspec(dllexport)
#elif defined(KILN_USING_SHARED)
#define KILN_API __declspec(dllimport)
#else
#define KILN_API
#endif
#else
#define KILN_API __attribute__((visibility("default")))
#endif
