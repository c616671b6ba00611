// Kiln's error hierarchy: every public function reports bad input with one of these.
#pragma once

#include <stdexcept>
#include <string>

#include "kiln/export.hpp"

namespace kiln {

/// Base of every error Kiln throws; the message names the node, value, file or column.
class KILN_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Shapes that do not fit together (the message names the op, the node and both shapes).
class KILN_API ShapeError : public Error {
 public:
  using Error::Error;
};

/// A value of the wrong element type.
class KILN_API DTypeError : public Error {
 public:
  using Error::Error;
};

/// A value outside what a function accepts (empty inputs, bad attributes, ...).
class KILN_API ValueError : public Error {
 public:
  using Error::Error;
};

/// A name that is unknown or used twice (inputs, nodes, parameters).
class KILN_API NameError : public Error {
 public:
  using Error::Error;
};

/// A malformed file or buffer.
class KILN_API FormatError : public Error {
 public:
  using Error::Error;
};

/// Memory that cannot be allocated (the message says how much, and for what).
class KILN_API OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

/// A file that cannot be read or written.
class KILN_API IoError : public Error {
 public:
  using Error::Error;
};

/// Bad training or evaluation data: a ragged row, an unparseable number, a missing value,
/// an unknown column, an empty file, an unreadable image, a target with one class. The
/// message names the file, the row (1-based, the header is row 1) and the column.
class KILN_API DataError : public Error {
 public:
  using Error::Error;
};

/// A NaN or infinity where a finite number is needed: a training loss or gradient
/// (TrainStep::run), a parameter being saved (save_model). The message names the value and,
/// with TrainStepOptions::detect_anomaly, the op and layer that first produced it.
class KILN_API NonFiniteError : public ValueError {
 public:
  using ValueError::ValueError;
};

/// A distributed (multi-rank) operation failed: a collective call, ranks whose parameters
/// differ, another rank's error. The message names the operation and the rank(s).
class KILN_API DistributedError : public Error {
 public:
  using Error::Error;
};

}  // namespace kiln
