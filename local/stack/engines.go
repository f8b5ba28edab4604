package stack

import (
	"fmt"
	"log/slog"
	"maps"

	"github.com/coursekb/pipeline/local/chaos"
	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/local/slack"
	"github.com/coursekb/pipeline/local/smtp"
	"github.com/coursekb/pipeline/local/speech"
	"github.com/coursekb/pipeline/local/workflows"
	"github.com/coursekb/pipeline/shared/events"
)

// WorkflowName is the lesson-pipeline workflow's resource name in the stack.
func (s *Stack) WorkflowName() string {
	return "projects/" + s.ProjectID + "/locations/" + WorkflowLocation + "/workflows/lesson-pipeline"
}

// workflowEnv is the lesson-pipeline workflow's environment, as
// terraform/workflows.tf sets it in the cloud, with the polling made quick.
func (s *Stack) workflowEnv() map[string]string {
	env := map[string]string{
		"TRANSCRIBER_URL": s.FunctionsURL + "/Transcriber",
		"ANALYZER_URL":    s.FunctionsURL + "/Analyzer",
		"POLL_SECONDS":    "1",
		"MAX_POLLS":       "600",
		"TOPIC_PROCESSED": events.TopicLessonProcessed,
	}
	maps.Copy(env, s.opts.WorkflowEnv)
	return env
}

// startEngines starts the local Workflows service and the local
// Speech-to-Text and Gemini servers. They answer for the sample course from
// its description and say they are the local engines.
func (s *Stack) startEngines(opts Options) error {
	log := slog.New(slog.NewJSONHandler(opts.Logs, nil))
	s.Workflows = workflows.NewService(workflows.Options{PubSub: s.PS, Logger: log, Observer: opts.StepObserver})
	addr, stop, err := s.Workflows.Listen("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("stack: workflows service: %w", err)
	}
	s.WorkflowsAddr = addr
	s.stops = append(s.stops, func() { stop(); s.Workflows.Close() })

	s.scripts.Store(speech.FromCatalog(opts.Catalog))
	scripts := speech.ScriptsFunc(func(id string) (speech.Script, bool) { return s.scripts.Load().(speech.Scripts).Script(id) })
	sopts := speech.Options{Storage: s.Storage, Logger: log}
	if s.chaosSpeech = speechChaos(opts.Chaos); s.chaosSpeech != nil {
		sopts.Interceptor = s.chaosSpeech.Interceptor()
	}
	if s.Speech, err = speech.New(scripts, sopts); err != nil {
		return fmt.Errorf("stack: speech server: %w", err)
	}
	sp, stopSpeech, err := s.Speech.Listen("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("stack: speech server: %w", err)
	}
	s.SpeechAddr = sp
	s.stops = append(s.stops, func() { stopSpeech() })

	durations := map[string]float64{}
	for _, v := range opts.Videos {
		durations[v.PageID] = v.Duration
	}
	s.Gemini = gemini.NewServer(opts.Catalog, gemini.Options{Durations: durations, Logger: log})
	s.OpenAI = openai.NewServer(openai.Options{Logger: log})
	s.Slack = slack.NewServer()
	if err := s.startAIServers(); err != nil {
		return err
	}
	mopts := smtp.Options{}
	if opts.Chaos.ErrorRate > 0 {
		s.chaosMail = &mailChaos{dice: chaos.NewDice(opts.Chaos.ErrorRate, opts.Chaos.Seed*100+7)}
		mopts.Refuse = s.chaosMail.refuse
	}
	s.Mail = smtp.New(mopts)
	if s.chaosMail != nil {
		s.chaosMail.refused = s.Mail.Refused
		s.chaosMail.total = func() int { return len(s.Mail.Messages()) }
	}
	if s.MailAddr, stop, err = listenStop(s.Mail.Listen); err != nil {
		return fmt.Errorf("stack: smtp receiver: %w", err)
	}
	s.stops = append(s.stops, stop)
	return nil
}

// SetCatalog changes the course the local Hotmart server serves, and the one
// the local engines answer from, as when the producer edits the course.
func (s *Stack) SetCatalog(cat sample.Catalog) {
	s.Hotmart.SetCatalog(cat)
	s.Gemini.SetCatalog(cat)
	s.scripts.Store(speech.FromCatalog(cat))
}

// listenStop starts a local server on a free loopback port and returns its
// address and a stop func that ignores the server's close error.
func listenStop(listen func(string) (string, func() error, error)) (string, func(), error) {
	addr, stop, err := listen("127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	return addr, func() { _ = stop() }, nil
}
