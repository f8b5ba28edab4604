package lessonstate

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CollTranscripts remembers, by the SHA-256 of a lesson's extracted audio,
// the transcript already made of it: a new version of a lesson whose video
// changed identity but not content (a re-uploaded master, a moved link)
// reuses it, and Speech-to-Text is not paid twice for the same audio.
const CollTranscripts = "transcripts"

// KnownTranscript is a document of CollTranscripts.
type KnownTranscript struct {
	AudioSHA256 string    `firestore:"-"`
	URI         string    `firestore:"uri"`
	Model       string    `firestore:"model"`
	Language    string    `firestore:"language"`
	LessonID    string    `firestore:"lessonId"`
	Version     int       `firestore:"version"`
	CreatedAt   time.Time `firestore:"createdAt"`
}

// TranscriptOf returns the transcript known for the audio hash; false when
// there is none.
func (s *Store) TranscriptOf(ctx context.Context, audioSHA256, language string) (KnownTranscript, bool, error) {
	snap, err := s.client.Collection(CollTranscripts).Doc(transcriptKey(audioSHA256, language)).Get(ctx)
	if isNotFound(err) {
		return KnownTranscript{}, false, nil
	}
	if err != nil {
		return KnownTranscript{}, false, fmt.Errorf("read transcript of audio %s: %w", audioSHA256, err)
	}
	var k KnownTranscript
	if err := snap.DataTo(&k); err != nil {
		return KnownTranscript{}, false, fmt.Errorf("decode transcript of audio %s: %w", audioSHA256, err)
	}
	k.AudioSHA256 = audioSHA256
	return k, true, nil
}

// RememberTranscript records the transcript made of an audio hash. The
// first record wins: a concurrent second one for the same audio is the same
// words and is dropped.
func (s *Store) RememberTranscript(ctx context.Context, k KnownTranscript) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	_, err := s.client.Collection(CollTranscripts).Doc(transcriptKey(k.AudioSHA256, k.Language)).Create(ctx, k)
	if err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("remember transcript of audio %s: %w", k.AudioSHA256, err)
	}
	return nil
}

// transcriptKey: the same audio recognized in another language is another
// transcript.
func transcriptKey(audioSHA256, language string) string { return audioSHA256 + "-" + language }

func isAlreadyExists(err error) bool { return err != nil && status.Code(err) == codes.AlreadyExists }
