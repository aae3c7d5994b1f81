// Package server serves the kprobe.v1 API over an investigate.Service: one HTTP handler
// for gRPC, gRPC-Web and Connect (JSON and protobuf), with health checks and reflection,
// bearer-token and mTLS authentication, request size and rate limits, and the listeners
// (TCP with or without TLS, a unix socket) that refuse to expose an unauthenticated API
// beyond the machine.
package server
