package harness

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Auto Scaling Query protocol actions the fake answers.
const (
	ActionCompleteLifecycleAction        = "CompleteLifecycleAction"
	ActionRecordLifecycleActionHeartbeat = "RecordLifecycleActionHeartbeat"
)

const (
	asgVersion   = "2011-01-01"
	asgNamespace = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
)

// ASGCall is one request the fake Auto Scaling endpoint received.
type ASGCall struct {
	Action     string
	Group      string // AutoScalingGroupName
	Hook       string // LifecycleHookName
	InstanceID string
	Token      string // LifecycleActionToken
	Result     string // LifecycleActionResult (CompleteLifecycleAction)
	// Error is the error code answered ("ValidationError", …), "" when the
	// call succeeded.
	Error string
	At    time.Time
}

// AutoScaling is a fake Auto Scaling endpoint on 127.0.0.1 speaking the
// Query protocol (form POST in, XML out) for CompleteLifecycleAction and
// RecordLifecycleActionHeartbeat. Like the real service it refuses
// unsigned requests, missing parameters, unknown results, and any action on
// a lifecycle action already completed ("No active Lifecycle Action
// found").
type AutoScaling struct {
	URL string

	mu        sync.Mutex
	calls     []ASGCall
	completed map[string]bool
	fail      []asgFailure
	now       func() time.Time
	requestID int
}

type asgFailure struct {
	status int
	code   string
}

// StartAutoScaling starts the fake, stopped by t.Cleanup.
func StartAutoScaling(t testing.TB) *AutoScaling {
	t.Helper()
	a := &AutoScaling{completed: map[string]bool{}, now: time.Now}
	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// Env points the agent's Auto Scaling client (package lifecycle) at the fake. Credentials
// and region come from elsewhere (MinIO.Env, or the test's own).
func (a *AutoScaling) Env() []string {
	return []string{"AWS_ENDPOINT_URL_AUTO_SCALING=" + a.URL}
}

// Calls returns every call so far, in order, failed ones included.
func (a *AutoScaling) Calls() []ASGCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]ASGCall(nil), a.calls...)
}

// FailNext makes the next n calls fail with HTTP status and error code
// (500 "InternalFailure", 400 "Throttling", …), for retry tests.
func (a *AutoScaling) FailNext(n, status int, code string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range n {
		a.fail = append(a.fail, asgFailure{status: status, code: code})
	}
}

func (a *AutoScaling) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requestID++
	reqID := fmt.Sprintf("00000000-0000-4000-8000-%012d", a.requestID)

	if r.Method != http.MethodPost {
		writeASGError(w, reqID, http.StatusBadRequest, "Sender", "InvalidAction", "only POST is supported")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeASGError(w, reqID, http.StatusBadRequest, "Sender", "MalformedQueryString", err.Error())
		return
	}
	f := r.PostForm
	call := ASGCall{
		Action:     f.Get("Action"),
		Group:      f.Get("AutoScalingGroupName"),
		Hook:       f.Get("LifecycleHookName"),
		InstanceID: f.Get("InstanceId"),
		Token:      f.Get("LifecycleActionToken"),
		Result:     f.Get("LifecycleActionResult"),
		At:         a.now(),
	}
	status, typ, code, msg := a.check(r, call, f.Get("Version"))
	if code == "" && len(a.fail) > 0 {
		status, typ, code, msg = a.fail[0].status, "Receiver", a.fail[0].code, "injected failure"
		a.fail = a.fail[1:]
	}
	call.Error = code
	a.calls = append(a.calls, call)
	if code != "" {
		writeASGError(w, reqID, status, typ, code, msg)
		return
	}
	if call.Action == ActionCompleteLifecycleAction {
		a.completed[actionKey(call)] = true
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", reqID)
	fmt.Fprintf(w, "<%[1]sResponse xmlns=%[2]q>\n  <%[1]sResult/>\n  <ResponseMetadata>\n    <RequestId>%[3]s</RequestId>\n  </ResponseMetadata>\n</%[1]sResponse>\n",
		call.Action, asgNamespace, reqID)
}

// check validates a call as the service does; code is "" when it passes.
func (a *AutoScaling) check(r *http.Request, c ASGCall, version string) (status int, typ, code, msg string) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		return http.StatusForbidden, "Sender", "MissingAuthenticationToken", "Request is missing Authentication Token"
	}
	if c.Action != ActionCompleteLifecycleAction && c.Action != ActionRecordLifecycleActionHeartbeat {
		return http.StatusBadRequest, "Sender", "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", c.Action, version)
	}
	if version != asgVersion {
		return http.StatusBadRequest, "Sender", "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", c.Action, version)
	}
	missing := []string{}
	if c.Group == "" {
		missing = append(missing, "autoScalingGroupName")
	}
	if c.Hook == "" {
		missing = append(missing, "lifecycleHookName")
	}
	if c.Action == ActionCompleteLifecycleAction && c.Result == "" {
		missing = append(missing, "lifecycleActionResult")
	}
	if len(missing) > 0 {
		return http.StatusBadRequest, "Sender", "ValidationError",
			fmt.Sprintf("%d validation error(s) detected: value null at '%s' failed to satisfy constraint: Member must not be null",
				len(missing), strings.Join(missing, "', '"))
	}
	if c.InstanceID == "" && c.Token == "" {
		return http.StatusBadRequest, "Sender", "ValidationError", "Either InstanceId or LifecycleActionToken must be specified"
	}
	if c.Action == ActionCompleteLifecycleAction && c.Result != "CONTINUE" && c.Result != "ABANDON" {
		return http.StatusBadRequest, "Sender", "ValidationError", "Lifecycle action result must be either CONTINUE or ABANDON"
	}
	if a.completed[actionKey(c)] {
		return http.StatusBadRequest, "Sender", "ValidationError",
			fmt.Sprintf("No active Lifecycle Action found with instance ID %s", c.InstanceID)
	}
	return 0, "", "", ""
}

func actionKey(c ASGCall) string {
	id := c.InstanceID
	if id == "" {
		id = "token:" + c.Token
	}
	return c.Group + "\x00" + c.Hook + "\x00" + id
}

func writeASGError(w http.ResponseWriter, reqID string, status int, typ, code, msg string) {
	var b strings.Builder
	b.WriteString("<ErrorResponse xmlns=\"" + asgNamespace + "\">\n  <Error>\n    <Type>")
	xml.EscapeText(&b, []byte(typ))
	b.WriteString("</Type>\n    <Code>")
	xml.EscapeText(&b, []byte(code))
	b.WriteString("</Code>\n    <Message>")
	xml.EscapeText(&b, []byte(msg))
	b.WriteString("</Message>\n  </Error>\n  <RequestId>" + reqID + "</RequestId>\n</ErrorResponse>\n")
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", reqID)
	w.WriteHeader(status)
	fmt.Fprint(w, b.String())
}
