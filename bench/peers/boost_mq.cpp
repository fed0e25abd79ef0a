// SPDX-License-Identifier: MIT
// Peer: Boost.Interprocess message_queue (libboost-dev, header-only), the queue a C++ user
// would reach for. One queue per direction of `nodes` messages; timed_send/timed_receive
// with 100 ms deadlines so that the harness can stop the run. See peer.h.
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/date_time/posix_time/posix_time_types.hpp>

#include <cstdio>
#include <string>

#include "peer.h"

namespace bip = boost::interprocess;

namespace {

struct ends {
	bip::message_queue *q[2];
};

std::string qname(const peer_cfg *c, int dir)
{
	return std::string(c->id) + (dir ? "-back" : "-fwd");
}

boost::posix_time::ptime deadline()
{
	return boost::posix_time::microsec_clock::universal_time() +
	       boost::posix_time::milliseconds(100);
}

int setup(const peer_cfg *c)
{
	try {
		bip::message_queue::remove(qname(c, 0).c_str());
		bip::message_queue::remove(qname(c, 1).c_str());
		bip::message_queue(bip::create_only, qname(c, 0).c_str(), c->nodes, c->size);
		if (c->pingpong)
			bip::message_queue(bip::create_only, qname(c, 1).c_str(), c->nodes,
					   c->reply);
	} catch (const std::exception &e) {
		std::fprintf(stderr, "boost_mq: %s\n", e.what());
		return -1;
	}
	return 0;
}

void *open(const peer_cfg *c, int)
{
	try {
		ends *e = new ends{ { nullptr, nullptr } };

		e->q[0] = new bip::message_queue(bip::open_only, qname(c, 0).c_str());
		if (c->pingpong)
			e->q[1] = new bip::message_queue(bip::open_only, qname(c, 1).c_str());
		return e;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "boost_mq: %s\n", e.what());
		return nullptr;
	}
}

int send(void *h, int dir, const void *buf, size_t len)
{
	try {
		return static_cast<ends *>(h)->q[dir]->timed_send(buf, len, 0, deadline()) ? 1 : 0;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "boost_mq: %s\n", e.what());
		return -1;
	}
}

int recv(void *h, int dir, void *buf, size_t len)
{
	try {
		bip::message_queue::size_type got = 0;
		unsigned prio = 0;

		if (!static_cast<ends *>(h)->q[dir]->timed_receive(buf, len, got, prio, deadline()))
			return 0;
		return got == len ? 1 : -1;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "boost_mq: %s\n", e.what());
		return -1;
	}
}

void close(void *h)
{
	ends *e = static_cast<ends *>(h);

	delete e->q[0];
	delete e->q[1];
	delete e;
}

void teardown(const peer_cfg *c)
{
	bip::message_queue::remove(qname(c, 0).c_str());
	bip::message_queue::remove(qname(c, 1).c_str());
}

const peer_ops ops = { "boost_mq", setup, open, send, recv, close, teardown };

} // namespace

int main(int argc, char **argv)
{
	return peer_main(argc, argv, &ops);
}
