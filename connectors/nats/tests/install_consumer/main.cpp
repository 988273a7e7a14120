// A program outside the source tree, built against the installed package's ringflow::nats.
#include <cstdio>
#include <string>

#include <ringflow/nats/nats.hpp>

int main() {
  const std::string subject = ringflow::nats::subject_for("orders", "k1", 8);
  std::printf("ringflow::nats consumer: %s\n", subject.c_str());
  return subject.rfind("orders.", 0) == 0 && subject.ends_with(".k1") ? 0 : 2;
}
