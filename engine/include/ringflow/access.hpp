#pragma once
// Access control: producers and subscriptions created for a principal may only publish to /
// subscribe within the topic patterns granted to it.
//
//   ringflow::Principal billing{"billing", {"payments.>"}, {"orders.*"}};
//   auto producer = engine.make_producer(billing);   // publish outside payments.> -> unauthorized
//   ringflow::SubscribeOptions o;
//   o.principal = billing;
//   engine.subscribe("orders.created", handler, o);  // outside orders.* -> throws Unauthorized
//
// Grants are compiled to one flag per topic when the engine starts (or when a producer is made
// while it runs): publish() checks one byte, never a string. A producer or subscription made
// without a principal is unrestricted.

#include <stdexcept>
#include <string>
#include <vector>

namespace ringflow {

struct Principal {
  std::string name;
  std::vector<std::string> publish;    ///< topic patterns it may publish to (NATS wildcards)
  std::vector<std::string> subscribe;  ///< patterns it may subscribe within
};

/// Thrown when a subscription asks for more than its principal's grants.
class Unauthorized : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ringflow
