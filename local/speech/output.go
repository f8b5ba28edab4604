package speech

import (
	"context"
	"fmt"
	"path"
	"strings"

	"cloud.google.com/go/speech/apiv2/speechpb"
	"google.golang.org/protobuf/encoding/protojson"
)

// writeResults writes a file's results under the gs:// prefix as the real
// service does: BatchRecognizeResults as JSON, one object per input file.
func (s *Server) writeResults(ctx context.Context, prefix, inputObject string, res *speechpb.BatchRecognizeResults) (string, error) {
	bucket, dir, _ := strings.Cut(strings.TrimPrefix(prefix, "gs://"), "/")
	name := outputName(dir, inputObject, newID())
	body, err := marshalResults(res)
	if err != nil {
		return "", fmt.Errorf("encode results: %w", err)
	}
	w := s.storage.Bucket(bucket).Object(name).NewWriter(ctx)
	w.ContentType = "application/json"
	if _, err := w.Write(body); err != nil {
		w.Close()
		return "", storageFailure("gs://"+bucket+"/"+name, "write", err)
	}
	if err := w.Close(); err != nil {
		return "", storageFailure("gs://"+bucket+"/"+name, "write", err)
	}
	return "gs://" + bucket + "/" + name, nil
}

// outputName is where the real service writes a file's transcript under a
// gs:// prefix: <input name without extension>_transcript_<uuid>.json.
func outputName(prefix, inputObject, id string) string {
	base := path.Base(inputObject)
	base = base[:len(base)-len(path.Ext(base))]
	if prefix != "" && prefix[len(prefix)-1] != '/' {
		prefix += "/"
	}
	return prefix + base + "_transcript_" + id + ".json"
}

// marshalResults is the JSON a results object holds: BatchRecognizeResults
// in protobuf's JSON mapping (lowerCamelCase names, durations as "1.500s"),
// which the real service's readers parse with protojson or
// BatchRecognizeResults.from_json.
func marshalResults(res *speechpb.BatchRecognizeResults) ([]byte, error) {
	return protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(res)
}
