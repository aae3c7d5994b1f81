// Package kprobev1 is the generated code of the kprobe.v1 API (investigation.proto): the
// messages here, the Connect client and handler in kprobev1connect. Rebuild with
// `make generate`; never edit the *.pb.go and *.connect.go files by hand.
package kprobev1
