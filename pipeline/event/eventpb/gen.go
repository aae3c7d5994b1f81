package eventpb

//go:generate protoc --plugin=protoc-gen-go=../../../.bin/protoc-gen-go --go_out=. --go_opt=paths=source_relative event.proto
