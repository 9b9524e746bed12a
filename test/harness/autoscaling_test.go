package harness_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nodeagent/nodeagent/test/harness"
)

func asgClient(a *harness.AutoScaling) *autoscaling.Client {
	return autoscaling.New(autoscaling.Options{
		BaseEndpoint: aws.String(a.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer:      aws.NopRetryer{},
	})
}

func TestAutoScalingRoundTripWithSDK(t *testing.T) {
	a := harness.StartAutoScaling(t)
	c := asgClient(a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := c.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String("shop-web"),
		LifecycleHookName:    aws.String("launch"),
		InstanceId:           aws.String("i-0aaa"),
	}); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	out, err := c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName:  aws.String("shop-web"),
		LifecycleHookName:     aws.String("launch"),
		InstanceId:            aws.String("i-0aaa"),
		LifecycleActionResult: aws.String("CONTINUE"),
	})
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if out == nil {
		t.Fatal("complete: nil output")
	}
	// The real service has no active action left once it is completed.
	_, err = c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName:  aws.String("shop-web"),
		LifecycleHookName:     aws.String("launch"),
		InstanceId:            aws.String("i-0aaa"),
		LifecycleActionResult: aws.String("CONTINUE"),
	})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationError" ||
		!strings.Contains(apiErr.ErrorMessage(), "No active Lifecycle Action") {
		t.Fatalf("second complete: got %v, want ValidationError: No active Lifecycle Action", err)
	}

	want := []harness.ASGCall{
		{Action: harness.ActionRecordLifecycleActionHeartbeat, Group: "shop-web", Hook: "launch", InstanceID: "i-0aaa"},
		{Action: harness.ActionCompleteLifecycleAction, Group: "shop-web", Hook: "launch", InstanceID: "i-0aaa", Result: "CONTINUE"},
		{Action: harness.ActionCompleteLifecycleAction, Group: "shop-web", Hook: "launch", InstanceID: "i-0aaa", Result: "CONTINUE", Error: "ValidationError"},
	}
	got := a.Calls()
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(harness.ASGCall{}, "At")); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	for i, c := range got {
		if c.At.IsZero() {
			t.Errorf("call %d: no time recorded", i)
		}
	}
}

func TestAutoScalingRefusesBadCalls(t *testing.T) {
	tests := []struct {
		name     string
		in       *autoscaling.CompleteLifecycleActionInput
		wantCode string
		wantMsg  string
	}{
		{
			name: "missing group",
			in: &autoscaling.CompleteLifecycleActionInput{
				LifecycleHookName: aws.String("launch"), InstanceId: aws.String("i-1"), LifecycleActionResult: aws.String("CONTINUE"),
			},
			wantCode: "ValidationError", wantMsg: "autoScalingGroupName",
		},
		{
			name: "missing result",
			in: &autoscaling.CompleteLifecycleActionInput{
				AutoScalingGroupName: aws.String("g"), LifecycleHookName: aws.String("launch"), InstanceId: aws.String("i-1"),
			},
			wantCode: "ValidationError", wantMsg: "lifecycleActionResult",
		},
		{
			name: "unknown result",
			in: &autoscaling.CompleteLifecycleActionInput{
				AutoScalingGroupName: aws.String("g"), LifecycleHookName: aws.String("launch"), InstanceId: aws.String("i-1"),
				LifecycleActionResult: aws.String("MAYBE"),
			},
			wantCode: "ValidationError", wantMsg: "CONTINUE or ABANDON",
		},
		{
			name: "neither instance nor token",
			in: &autoscaling.CompleteLifecycleActionInput{
				AutoScalingGroupName: aws.String("g"), LifecycleHookName: aws.String("launch"), LifecycleActionResult: aws.String("ABANDON"),
			},
			wantCode: "ValidationError", wantMsg: "InstanceId or LifecycleActionToken",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := harness.StartAutoScaling(t)
			// Skip the SDK's own client-side validation of required
			// members, so the server's answer is what is tested.
			_, err := asgClient(a).CompleteLifecycleAction(context.Background(), tt.in, func(o *autoscaling.Options) {
				o.APIOptions = append(o.APIOptions, removeValidation)
			})
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("got %v, want an API error", err)
			}
			if apiErr.ErrorCode() != tt.wantCode || !strings.Contains(apiErr.ErrorMessage(), tt.wantMsg) {
				t.Errorf("got %s: %s, want %s containing %q", apiErr.ErrorCode(), apiErr.ErrorMessage(), tt.wantCode, tt.wantMsg)
			}
			calls := a.Calls()
			if len(calls) != 1 || calls[0].Error != tt.wantCode {
				t.Errorf("calls = %+v, want one recorded with error %s", calls, tt.wantCode)
			}
		})
	}
}

func TestAutoScalingFailNextThenSucceeds(t *testing.T) {
	a := harness.StartAutoScaling(t)
	a.FailNext(2, http.StatusInternalServerError, "InternalFailure")
	c := autoscaling.New(autoscaling.Options{
		BaseEndpoint: aws.String(a.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		}),
	})
	_, err := c.RecordLifecycleActionHeartbeat(context.Background(), &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String("g"), LifecycleHookName: aws.String("h"), InstanceId: aws.String("i-1"),
	})
	if err != nil {
		t.Fatalf("heartbeat after 2 injected failures with 3 attempts: %v", err)
	}
	var codes []string
	for _, c := range a.Calls() {
		codes = append(codes, c.Error)
	}
	if diff := cmp.Diff([]string{"InternalFailure", "InternalFailure", ""}, codes); diff != "" {
		t.Errorf("call errors (-want +got):\n%s", diff)
	}
}

func TestAutoScalingRawQueryProtocol(t *testing.T) {
	a := harness.StartAutoScaling(t)
	tests := []struct {
		name       string
		auth       bool
		form       url.Values
		wantStatus int
		wantBody   []string
	}{
		{
			name: "complete",
			auth: true,
			form: url.Values{"Action": {"CompleteLifecycleAction"}, "Version": {"2011-01-01"},
				"AutoScalingGroupName": {"g"}, "LifecycleHookName": {"h"}, "LifecycleActionToken": {"tok"},
				"LifecycleActionResult": {"ABANDON"}},
			wantStatus: http.StatusOK,
			wantBody: []string{
				`<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">`,
				`<CompleteLifecycleActionResult/>`, `<RequestId>`,
			},
		},
		{
			name:       "unsigned",
			form:       url.Values{"Action": {"RecordLifecycleActionHeartbeat"}, "Version": {"2011-01-01"}},
			wantStatus: http.StatusForbidden,
			wantBody:   []string{"<ErrorResponse", "<Code>MissingAuthenticationToken</Code>"},
		},
		{
			name:       "unknown action",
			auth:       true,
			form:       url.Values{"Action": {"DescribeAutoScalingGroups"}, "Version": {"2011-01-01"}},
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{"<Type>Sender</Type>", "<Code>InvalidAction</Code>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, a.URL, strings.NewReader(tt.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.auth {
				req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/autoscaling/aws4_request")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b strings.Builder
			if _, err := io.Copy(&b, resp.Body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d; body:\n%s", resp.StatusCode, tt.wantStatus, b.String())
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(b.String(), w) {
					t.Errorf("body lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
	if n := len(a.Calls()); n != len(tests) {
		t.Errorf("%d calls recorded, want %d", n, len(tests))
	}
}

// removeValidation drops the SDK's client-side check of required members.
func removeValidation(stack *middleware.Stack) error {
	_, err := stack.Initialize.Remove("OperationInputValidation")
	return err
}
