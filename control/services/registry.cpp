// The AWS services control serves besides Lambda. One line a service; order matters only
// where one service's Start() reads another's tables (list the dependency first).
#include "control/service.h"

namespace geysir::control {

std::vector<std::unique_ptr<Service>> MakeServices(ServiceHost& host) {
  std::vector<std::unique_ptr<Service>> services;
  (void)host;
  return services;
}

}  // namespace geysir::control
