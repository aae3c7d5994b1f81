package kprobev1

//go:generate protoc --plugin=protoc-gen-go=../../../.bin/protoc-gen-go --plugin=protoc-gen-connect-go=../../../.bin/protoc-gen-connect-go --go_out=. --go_opt=paths=source_relative --connect-go_out=. --connect-go_opt=paths=source_relative investigation.proto
