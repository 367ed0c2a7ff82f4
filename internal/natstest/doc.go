// Package natstest runs embedded NATS servers for tests.
//
// Every server listens on 127.0.0.1 with a random port (Port -1), never a
// fixed one, logs nothing and installs no signal handlers. The helpers fail
// the test instead of panicking, and they register t.Cleanup hooks, so a test
// only asks for what it needs:
//
//	s := natstest.RunServer(t)
//	nc := natstest.Connect(t, s)
//
// Cleanups run last-in first-out, so connections made with [Connect] close
// before their server shuts down.
//
// [Connect] uses nats.InProcessServer and needs no socket. A test that wants
// real TCP (for example to put a proxy in between) can dial s.ClientURL()
// itself.
package natstest
