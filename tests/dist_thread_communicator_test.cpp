// The in-process test communicator (tests/support/thread_communicator.hpp) that the
// data-parallel tests run on: results, bitwise agreement, mismatches and failures.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "support/thread_communicator.hpp"

namespace {

using kiln::dist::Communicator;

std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

TEST(ThreadCommunicator, SumIsTheSameBitsOnEveryRank) {
  // 1e8 + 1 - 1e8 rounds differently by order: every rank must still agree.
  const std::vector<float> parts = {1e8f, 1.0f, -1e8f, 0.25f};
  std::vector<std::uint32_t> result(4);
  kiln_test::run_ranks(4, [&](Communicator& comm) {
    std::vector<float> v = {parts[static_cast<std::size_t>(comm.rank())], float(comm.rank())};
    comm.all_reduce_sum(v);
    EXPECT_EQ(v[1], 6.0f);
    result[static_cast<std::size_t>(comm.rank())] = bits_of(v[0]);
  });
  // Rank order: ((1e8 + 1) - 1e8) + 0.25 in float = 0.25 (1e8 + 1 rounds to 1e8).
  EXPECT_EQ(result[0], bits_of(0.25f));
  for (std::uint32_t b : result) EXPECT_EQ(b, result[0]);
}

TEST(ThreadCommunicator, DoubleSumBroadcastGatherBarrier) {
  kiln_test::run_ranks(3, [](Communicator& comm) {
    std::vector<double> d = {0.5 * comm.rank(), 1.0};
    comm.all_reduce_sum(d);
    EXPECT_EQ(d[0], 1.5);
    EXPECT_EQ(d[1], 3.0);

    std::vector<std::uint8_t> b(3, static_cast<std::uint8_t>(comm.rank()));
    if (comm.rank() == 2) b = {7, 8, 9};
    comm.broadcast(b, 2);
    EXPECT_EQ(b, (std::vector<std::uint8_t>{7, 8, 9}));

    std::vector<std::uint8_t> mine(static_cast<std::size_t>(comm.rank()), 42);
    const auto all = comm.all_gather(mine);
    ASSERT_EQ(all.size(), 3u);
    for (std::size_t r = 0; r < 3; ++r) EXPECT_EQ(all[r], std::vector<std::uint8_t>(r, 42));
    comm.barrier();
  });
}

TEST(ThreadCommunicator, DeferredRequestsReduceOnlyAtTestOrWait) {
  kiln_test::run_ranks(2, [](Communicator& comm) {
    std::vector<float> a = {1.0f}, b = {2.0f}, c = {3.0f};
    const auto ia = comm.start_all_reduce_sum(a);
    const auto ib = comm.start_all_reduce_sum(b);
    const auto ic = comm.start_all_reduce_sum(c);
    EXPECT_EQ(a[0], 1.0f);        // queued, not reduced yet
    EXPECT_FALSE(comm.test(ib));  // reduces a only
    EXPECT_EQ(a[0], 2.0f);
    EXPECT_EQ(b[0], 2.0f);
    comm.wait(ic);  // b, then c
    EXPECT_EQ(b[0], 4.0f);
    EXPECT_EQ(c[0], 6.0f);
    EXPECT_TRUE(comm.test(ia));
    comm.wait(ib);  // already done
  });
}

TEST(ThreadCommunicator, MismatchedCallsThrowOnEveryRank) {
  const auto errors = kiln_test::run_ranks_collect(2, [](Communicator& comm) {
    std::vector<float> v(comm.rank() == 0 ? 3 : 4, 1.0f);
    comm.all_reduce_sum(v);
  });
  for (const auto& e : errors) {
    ASSERT_TRUE(e);
    try {
      std::rethrow_exception(e);
    } catch (const kiln::DistributedError& d) {
      EXPECT_NE(std::string(d.what()).find("rank 1 called all_reduce_sum(float) with 4"),
                std::string::npos)
          << d.what();
    }
  }
}

TEST(ThreadCommunicator, AFailedRankReleasesTheOthers) {
  const auto errors = kiln_test::run_ranks_collect(3, [](Communicator& comm) {
    if (comm.rank() == 1) throw kiln::ValueError("bad row 17");
    comm.barrier();  // would wait forever for rank 1
  });
  ASSERT_TRUE(errors[1]);
  EXPECT_THROW(std::rethrow_exception(errors[1]), kiln::ValueError);
  for (int r : {0, 2}) {
    ASSERT_TRUE(errors[static_cast<std::size_t>(r)]);
    try {
      std::rethrow_exception(errors[static_cast<std::size_t>(r)]);
    } catch (const kiln::DistributedError& d) {
      EXPECT_NE(std::string(d.what()).find("rank 1 failed: bad row 17"), std::string::npos)
          << d.what();
    }
  }
  // run_ranks rethrows the cause, not the follow-ups.
  EXPECT_THROW(kiln_test::run_ranks(2,
                                    [](Communicator& comm) {
                                      if (comm.rank() == 0) throw kiln::ValueError("cause");
                                      comm.barrier();
                                    }),
               kiln::ValueError);
}

TEST(ThreadCommunicator, AbortThrowsAndIsRecorded) {
  const auto errors = kiln_test::run_ranks_collect(2, [&](Communicator& comm) {
    auto& tc = dynamic_cast<kiln_test::ThreadCommunicator&>(comm);
    if (comm.rank() == 0) tc.abort("disk full", 3);
    comm.barrier();
  });
  try {
    std::rethrow_exception(errors[0]);
  } catch (const kiln::DistributedError& d) {
    EXPECT_STREQ(d.what(), "kiln: rank 0 of 2: disk full");
  }
  EXPECT_TRUE(errors[1]);
}

TEST(ThreadCommunicator, ARankThatReturnsEarlyFailsTheWaiters) {
  const auto errors = kiln_test::run_ranks_collect(2, [](Communicator& comm) {
    if (comm.rank() == 0) return;
    comm.barrier();
  });
  EXPECT_FALSE(errors[0]);
  EXPECT_THROW(std::rethrow_exception(errors[1]), kiln::DistributedError);
}

}  // namespace
