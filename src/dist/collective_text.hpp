// Internal: text through a Communicator (messages, file names, layouts), for libkiln's
// data-parallel code: the dist helpers, DataParallel, the Trainer and train_from_spec.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/dist/communicator.hpp"

namespace kiln::dist {

/// `root`'s text on every rank (the other ranks' `text` is ignored).
std::string broadcast_text(Communicator& comm, std::string_view text, int root = 0);
/// Every rank's text, in rank order, on every rank.
std::vector<std::string> all_gather_text(Communicator& comm, std::string_view text);

}  // namespace kiln::dist
