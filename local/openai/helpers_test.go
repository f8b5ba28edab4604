package openai_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	localopenai "github.com/coursekb/pipeline/local/openai"
)

// start runs a server on a loopback port, as the stack does, and returns it
// with a real SDK client pointed at it.
func start(t *testing.T, opts localopenai.Options, clientOpts ...option.RequestOption) (*localopenai.Server, openai.Client) {
	t.Helper()
	srv := localopenai.NewServer(opts)
	base, stop, err := srv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	if !strings.HasSuffix(base, localopenai.APIPrefix) {
		t.Fatalf("base URL %q lacks %s", base, localopenai.APIPrefix)
	}
	all := append([]option.RequestOption{option.WithBaseURL(base), option.WithAPIKey("local")}, clientOpts...)
	return srv, openai.NewClient(all...)
}

// clock is a settable clock for Options.Now, so that indexing delays and
// expiry can be crossed without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// apiError returns err as the SDK's API error, failing the test if it is
// not one.
func apiError(t *testing.T, err error) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("want an OpenAI API error, got %v", err)
	}
	if e.Response == nil || e.Response.Header.Get("x-request-id") == "" {
		t.Errorf("error answer without x-request-id")
	}
	return e
}

func upload(t *testing.T, ctx context.Context, c openai.Client, filename, text string) *openai.FileObject {
	t.Helper()
	f, err := c.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(strings.NewReader(text), filename, "text/markdown"),
		Purpose: openai.FilePurposeAssistants,
	})
	if err != nil {
		t.Fatalf("upload %s: %v", filename, err)
	}
	return f
}

func newStore(t *testing.T, ctx context.Context, c openai.Client, name string) *openai.VectorStore {
	t.Helper()
	vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String(name)})
	if err != nil {
		t.Fatalf("create store %s: %v", name, err)
	}
	return vs
}

type attrs map[string]openai.VectorStoreFileNewParamsAttributeUnion

func str(s string) openai.VectorStoreFileNewParamsAttributeUnion {
	return openai.VectorStoreFileNewParamsAttributeUnion{OfString: openai.String(s)}
}

func num(f float64) openai.VectorStoreFileNewParamsAttributeUnion {
	return openai.VectorStoreFileNewParamsAttributeUnion{OfFloat: openai.Float(f)}
}

func boolean(b bool) openai.VectorStoreFileNewParamsAttributeUnion {
	return openai.VectorStoreFileNewParamsAttributeUnion{OfBool: openai.Bool(b)}
}

func static(size, overlap int64) openai.FileChunkingStrategyParamUnion {
	return openai.FileChunkingStrategyParamOfStatic(openai.StaticFileChunkingStrategyParam{
		MaxChunkSizeTokens: size, ChunkOverlapTokens: overlap})
}

// attachAndWait attaches and polls until the file leaves in_progress.
func attachAndWait(t *testing.T, ctx context.Context, c openai.Client, storeID, fileID string, a attrs) *openai.VectorStoreFile {
	t.Helper()
	vf, err := c.VectorStores.Files.NewAndPoll(ctx, storeID, openai.VectorStoreFileNewParams{
		FileID: fileID, Attributes: a, ChunkingStrategy: static(200, 50)}, 10)
	if err != nil {
		t.Fatalf("attach %s to %s: %v", fileID, storeID, err)
	}
	return vf
}

func cosine(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	return dot / math.Sqrt(na*nb)
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// Lessons of two schools, as the sync stage publishes them: one markdown
// knowledge document each, with timed headings.
const (
	lessonPythonVars = `# Variables en Python

## 00:00:00–00:02:10 Declarar una variable
En Python una variable se declara asignándole un valor con el signo igual, por ejemplo edad = 30.
No hace falta indicar el tipo: el intérprete lo deduce del valor asignado.
Los nombres de variables usan minúsculas y guiones bajos, como nombre_completo.

## 00:02:10–00:04:30 Tipos de datos
Los tipos básicos son int, float, str y bool. La función type() muestra el tipo de un valor.
Una misma variable puede cambiar de tipo durante la ejecución del programa.

## 00:04:30–00:06:00 Constantes
Python no tiene constantes verdaderas; por convención se escriben en MAYÚSCULAS, como PI = 3.14159.
`
	lessonJSFunctions = `# Funciones en JavaScript

## 00:00:00–00:03:00 Declaración de funciones
Una función en JavaScript se declara con la palabra function, un nombre y sus parámetros entre paréntesis.
Las funciones flecha son una sintaxis más corta: const doble = (x) => x * 2.

## 00:03:00–00:05:00 Valores de retorno
La instrucción return devuelve un valor y termina la ejecución de la función.
Sin return, la función devuelve undefined.
`
	lessonSEO = `# SEO para tiendas online

## 00:00:00–00:04:00 Palabras clave
La investigación de palabras clave identifica los términos que busca tu público en Google.
Prioriza palabras clave de cola larga con intención de compra y poca competencia.

## 00:04:00–00:07:00 Contenido
Cada página debe responder una intención de búsqueda concreta con un título claro.
`
	lessonEmail = `# Email marketing

## 00:00:00–00:03:30 Segmentación
Segmenta tu lista de suscriptores por comportamiento de compra para enviar campañas relevantes.
Las variables de personalización, como el nombre del suscriptor, aumentan la tasa de apertura.

## 00:03:30–00:06:00 Métricas
Mide la tasa de apertura, la tasa de clics y las bajas de cada campaña.
`
)
