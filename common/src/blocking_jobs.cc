#include "rdmesh/common/blocking_jobs.h"

namespace rdmesh {

BlockingJobs::~BlockingJobs() {
  for (Job& job : jobs_) job.thread.join();
}

void BlockingJobs::start(std::function<std::function<void()>()> job) {
  std::erase_if(jobs_, [](Job& j) {
    if (!j.finished->load()) return false;
    j.thread.join();
    return true;
  });
  auto finished = std::make_shared<std::atomic<bool>>(false);
  jobs_.push_back({std::thread([this, job = std::move(job), finished]() {
                     tasks_.post(job());
                     finished->store(true);
                   }),
                   finished});
}

}  // namespace rdmesh
