package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/coursekb/pipeline/shared/lessonstate"
)

// fingerprinted is everything detection sees of a lesson, in a fixed order.
// Changing this struct changes every fingerprint, so every lesson would be
// reported changed once: add fields only on purpose.
type fingerprinted struct {
	ID          string `json:"id"`
	CourseID    string `json:"courseId"`
	CourseName  string `json:"courseName"`
	School      string `json:"school"`
	ModuleID    string `json:"moduleId"`
	ModuleName  string `json:"moduleName"`
	ModuleOrder int    `json:"moduleOrder"`
	PageOrder   int    `json:"pageOrder"`
	Title       string `json:"title"`
	Type        string `json:"type"`
	HasMedia    bool   `json:"hasMedia"`
	MediaStatus string `json:"mediaStatus"`
	MediaKind   string `json:"mediaKind,omitempty"`
	// MediaFingerprint stands for the media itself. The media URI is left
	// out on purpose: a signed URL changes on every resolution while the
	// video does not, and the media source's fingerprint already changes
	// whenever the file does.
	MediaFingerprint string `json:"mediaFingerprint,omitempty"`
	// A media source that gives no fingerprint is judged by what it does
	// give: URI, size and checksum.
	MediaURI  string `json:"mediaUri,omitempty"`
	MediaSize int64  `json:"mediaSize,omitempty"`
	MediaMD5  string `json:"mediaMd5,omitempty"`
}

// Fingerprint is a stable hash (sha256, hex) of what detection sees of a
// lesson: its place in the course, title, type and media (status, kind and the
// media source's fingerprint, or its URI, size and checksum when it gives no
// fingerprint). It ignores pipeline state (version, stages,
// outbox, run ids, timestamps) and the Fingerprint field itself, so the store
// can compare a stored lesson with an observed one.
func Fingerprint(l lessonstate.Lesson) string {
	f := fingerprinted{
		ID:          l.ID,
		CourseID:    l.CourseID,
		CourseName:  l.CourseName,
		School:      l.School,
		ModuleID:    l.ModuleID,
		ModuleName:  l.ModuleName,
		ModuleOrder: l.ModuleOrder,
		PageOrder:   l.PageOrder,
		Title:       l.Title,
		Type:        l.Type,
		HasMedia:    l.HasMedia,
		MediaStatus: l.MediaStatus,
	}
	if l.Media != nil {
		f.MediaKind = l.Media.Kind
		f.MediaFingerprint = l.Media.Fingerprint
		if f.MediaFingerprint == "" {
			f.MediaURI, f.MediaSize, f.MediaMD5 = l.Media.Ref, l.Media.Size, l.Media.MD5
		}
	}
	b, err := json.Marshal(f)
	if err != nil {
		// Strings, ints and bools always marshal.
		panic("detect: fingerprint: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// courseFingerprint hashes a course's lesson fingerprints in walk order, so it
// changes when any lesson changes, appears, disappears or moves.
func courseFingerprint(lessonFingerprints []string) string {
	h := sha256.New()
	for _, fp := range lessonFingerprints {
		h.Write([]byte(fp))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}
