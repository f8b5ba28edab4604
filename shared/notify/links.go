package notify

import (
	"fmt"
	"net/url"
	"strings"
)

// Links makes the URLs messages point to: a lesson's page on Hotmart Club
// and its logs in Cloud Logging.
type Links struct {
	// ClubLessonURL is a template with {subdomain}, {lessonId}, {courseId}
	// and {moduleId}. Hotmart Club serves a lesson at
	// https://<subdomain>.club.hotmart.com/lesson/<page id>/<slug>; the slug
	// is cosmetic, so the default leaves it out.
	ClubLessonURL string
	// ConsoleURL is the Google Cloud console's base URL.
	ConsoleURL string
	ProjectID  string
}

// DefaultClubLessonURL is the lesson link's default template.
const DefaultClubLessonURL = "https://{subdomain}.club.hotmart.com/lesson/{lessonId}"

// check names what is wrong with the templates.
func (l Links) check() []string {
	var problems []string
	if l.ClubLessonURL != "" {
		if !strings.Contains(l.ClubLessonURL, "{lessonId}") {
			problems = append(problems, "HOTMART_CLUB_LESSON_URL has no {lessonId}")
		}
		if u, err := url.Parse(strings.NewReplacer("{", "", "}", "").Replace(l.ClubLessonURL)); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			problems = append(problems, "HOTMART_CLUB_LESSON_URL is not an http(s) URL template")
		}
	}
	if l.ConsoleURL != "" {
		if u, err := url.Parse(l.ConsoleURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			problems = append(problems, "CLOUD_CONSOLE_URL is not an http(s) URL")
		}
	}
	return problems
}

// Lesson returns the Club page of a lesson, or "" when the course's
// subdomain is unknown (the template needs it) or no template is set.
func (l Links) Lesson(subdomain, courseID, moduleID, lessonID string) string {
	t := l.ClubLessonURL
	if t == "" || lessonID == "" || (strings.Contains(t, "{subdomain}") && subdomain == "") {
		return ""
	}
	return strings.NewReplacer(
		"{subdomain}", url.PathEscape(subdomain),
		"{lessonId}", url.PathEscape(lessonID),
		"{courseId}", url.PathEscape(courseID),
		"{moduleId}", url.PathEscape(moduleID),
	).Replace(t)
}

// LessonLogs returns the Cloud Logging query for a lesson's log lines
// (every function logs jsonPayload.lessonId), narrowed to stage when given,
// over the last week.
func (l Links) LessonLogs(lessonID, stage string) string {
	if lessonID == "" {
		return ""
	}
	q := fmt.Sprintf("jsonPayload.lessonId=%q", lessonID)
	if stage != "" {
		q += fmt.Sprintf("\njsonPayload.stage=%q", stage)
	}
	return l.logsQuery(q)
}

// SubscriptionLogs returns the Cloud Logging query for a Pub/Sub
// subscription's own log entries.
func (l Links) SubscriptionLogs(subscription string) string {
	if subscription == "" || strings.HasPrefix(subscription, "topic:") {
		return ""
	}
	sub := subscription[strings.LastIndex(subscription, "/")+1:]
	return l.logsQuery(fmt.Sprintf("resource.type=\"pubsub_subscription\"\nresource.labels.subscription_id=%q", sub))
}

func (l Links) logsQuery(q string) string {
	if l.ConsoleURL == "" {
		return ""
	}
	u := strings.TrimRight(l.ConsoleURL, "/") + "/logs/query;query=" + componentEscape(q) + ";duration=P7D"
	if l.ProjectID != "" {
		u += "?project=" + url.QueryEscape(l.ProjectID)
	}
	return u
}

// componentEscape escapes everything but RFC 3986's unreserved characters:
// the console reads the query from a matrix parameter of the path, where
// '=', ';', '+' and spaces would change its meaning.
func componentEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
