// Internal: KILN_INTERNAL_API marks the few internal functions libkiln calls in
// libkiln_infer across the shared-library boundary. They are exported (a shared libkiln
// could not link otherwise) but are not API: not in include/, no stability promise, and
// each one is listed by name, with its reason, in tests/symbols/kiln_infer.allowed.
// Everything else internal is hidden; stateless helpers that both libraries need (the
// archive, SHA-256, the oneDNN plumbing) are linked into each shared library instead
// (src/CMakeLists.txt), so that no oneDNN or cereal type appears in an exported signature.
#pragma once

#include "kiln/export.hpp"

#define KILN_INTERNAL_API KILN_API
