#pragma once
#include <stdexcept>

namespace medmon {

// A bad sink setting (the message starts with file:line:column or the option).
class SinkConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file of the events that cannot be opened (an output error, not a bad setting).
class SinkOpenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace medmon
