// Command protogen writes actors/actors.pb.go without protoc.
//
// The actors package answers requests with protobuf messages of its own (so
// that they cross protoactor's remote, which serializes proto messages by
// name). This command builds the descriptor of actors.proto by hand, the one
// source of truth for that schema besides the .proto file it mirrors, and runs
// protoc-gen-go's generator in process on it. Run it from the actors directory:
//
//	go generate ./actors
package main

import (
	"fmt"
	"os"

	gengo "google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

const fileName = "actors.proto"

// comments maps source paths (see descriptor.proto's SourceCodeInfo) to the
// leading comments protoc would have read from actors.proto.
var comments = map[string]string{
	"5,0":     " ErrorCode says why a request failed, so that a caller can tell a\n handler's refusal from a protocol outcome.\n",
	"5,0,2,0": " The code is missing: treat as an internal error.\n",
	"5,0,2,1": " The handler returned an error; the state is unchanged.\n",
	"5,0,2,2": " The handler panicked; the state is unchanged.\n",
	"5,0,2,3": " The round's outcome is unknown: the message may or may not have been\n applied. Retry with the same request ID to apply it exactly once.\n",
	"5,0,2,4": " Too few acceptors answered; the message was not applied.\n",
	"5,0,2,5": " Competing proposers kept the round from committing; the message was\n not applied.\n",
	"5,0,2,6": " The activation stopped before running the message; it was not applied.\n",
	"5,0,2,7": " The message or the register's value is unusable (not a protobuf\n message, undecodable state, wrong codec); nothing was applied.\n",
	"5,0,2,8": " Acceptors' storage failed (an I/O error) and too few others could\n serve the round; the message was not applied. A caller that does not\n know this code must treat it as it treats any unknown code.\n",
	"5,0,2,9": " Acceptors are out of disk space (or below their space reserve) and too\n few others could serve the round; the message was not applied. A\n STORAGE failure too.\n",
	"4,0":     " ErrorReply is the reply to a message that failed. actors.Request turns\n it back into a Go error.\n",
	"4,0,2,0": " Code says which kind of failure this is.\n",
	"4,0,2,1": " Reason is the handler's own error code (HandlerError.Code), if any.\n With INDETERMINATE it may say what made the round's outcome unknown:\n \"storage\" or \"no_space\" (acceptors' storage failed).\n",
	"4,0,2,2": " Message is the error's text.\n",
	"4,1":     " Query asks an actor for its state. It runs as the identity change, so\n the reply is linearizable.\n",
	"4,2":     " State is the reply to a Query: the actor's state as its codec encodes\n it.\n",
	"4,2,2,0": " Codec names the codec that encoded Data.\n",
	"4,2,2,1": " Data is the encoded state; empty for an actor that never changed.\n",
	"4,2,2,2": " Version counts the commits that changed the register.\n",
}

func field(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, typeName, jsonName string) *descriptorpb.FieldDescriptorProto {
	f := &descriptorpb.FieldDescriptorProto{
		Name:     proto.String(name),
		Number:   proto.Int32(num),
		Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
		Type:     typ.Enum(),
		JsonName: proto.String(jsonName),
	}
	if typeName != "" {
		f.TypeName = proto.String(typeName)
	}
	return f
}

func enumValue(name string, n int32) *descriptorpb.EnumValueDescriptorProto {
	return &descriptorpb.EnumValueDescriptorProto{Name: proto.String(name), Number: proto.Int32(n)}
}

func descriptor() *descriptorpb.FileDescriptorProto {
	fd := &descriptorpb.FileDescriptorProto{
		Name:    proto.String(fileName),
		Package: proto.String("protosynod.actors.v1"),
		Syntax:  proto.String("proto3"),
		Options: &descriptorpb.FileOptions{GoPackage: proto.String("github.com/protosynod/protosynod/actors")},
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("ErrorCode"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				enumValue("ERROR_CODE_UNSPECIFIED", 0),
				enumValue("ERROR_CODE_HANDLER", 1),
				enumValue("ERROR_CODE_PANIC", 2),
				enumValue("ERROR_CODE_INDETERMINATE", 3),
				enumValue("ERROR_CODE_UNAVAILABLE", 4),
				enumValue("ERROR_CODE_CONFLICT", 5),
				enumValue("ERROR_CODE_STOPPED", 6),
				enumValue("ERROR_CODE_INVALID", 7),
				enumValue("ERROR_CODE_STORAGE", 8),
				enumValue("ERROR_CODE_NO_SPACE", 9),
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{
			{
				Name: proto.String("ErrorReply"),
				Field: []*descriptorpb.FieldDescriptorProto{
					field("code", 1, descriptorpb.FieldDescriptorProto_TYPE_ENUM, ".protosynod.actors.v1.ErrorCode", "code"),
					field("reason", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING, "", "reason"),
					field("message", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING, "", "message"),
				},
			},
			{Name: proto.String("Query")},
			{
				Name: proto.String("State"),
				Field: []*descriptorpb.FieldDescriptorProto{
					field("codec", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, "", "codec"),
					field("data", 2, descriptorpb.FieldDescriptorProto_TYPE_BYTES, "", "data"),
					field("version", 3, descriptorpb.FieldDescriptorProto_TYPE_UINT64, "", "version"),
				},
			},
		},
	}
	info := &descriptorpb.SourceCodeInfo{}
	for path, c := range comments {
		var p []int32
		var n int32
		for _, r := range path + "," {
			if r == ',' {
				p = append(p, n)
				n = 0
				continue
			}
			n = n*10 + int32(r-'0')
		}
		info.Location = append(info.Location, &descriptorpb.SourceCodeInfo_Location{
			Path: p, Span: []int32{0, 0, 0}, LeadingComments: proto.String(c),
		})
	}
	fd.SourceCodeInfo = info
	return fd
}

func main() {
	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: []string{fileName},
		Parameter:      proto.String("paths=source_relative"),
		ProtoFile:      []*descriptorpb.FileDescriptorProto{descriptor()},
	}
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
	for _, f := range gen.Files {
		if f.Generate {
			gengo.GenerateFile(gen, f)
		}
	}
	resp := gen.Response()
	if resp.Error != nil {
		fmt.Fprintln(os.Stderr, "protogen:", resp.GetError())
		os.Exit(1)
	}
	for _, f := range resp.File {
		if err := os.WriteFile(f.GetName(), []byte(f.GetContent()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "protogen:", err)
			os.Exit(1)
		}
	}
}
