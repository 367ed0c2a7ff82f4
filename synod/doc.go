// Package synod is the CASPaxos protocol.
package synod
