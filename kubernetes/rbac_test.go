package kubernetes_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/kubernetes"
)

// asServiceAccount returns a client configuration that acts as a new
// service account bound to a Role with rules, in the test namespace.
func asServiceAccount(t *testing.T, name string, rules []rbacv1.PolicyRule) *rest.Config {
	t.Helper()
	cfg, cs, ns := needCluster(t)
	ctx := testCtx(t)
	_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{}, metav1.CreateOptions{})
	require.NoError(t, err)
	sa := rest.AnonymousClientConfig(cfg)
	sa.BearerToken = tok.Status.Token
	return sa
}

// TestRBACOfTheREADME: the Role the README gives is enough for a backend
// (and, with update, for a SessionManager with a warm pool), and without
// pods/exec the backend fails clearly instead of hanging.
func TestRBACOfTheREADME(t *testing.T) {
	ctx := testCtx(t)
	backendRules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}},
	}
	cfg := testConfig(t)
	cfg.RetryFor = 5 * time.Second
	cfg.REST = asServiceAccount(t, "agentbe-backend", backendRules)
	b, err := kubernetes.New(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, b.Write(ctx, "f.txt", []byte("with the README's role")))
	assert.Equal(t, "with the README's role", run(t, b, "cat f.txt"))
	p, err := b.Start(ctx, "echo bg", nil)
	require.NoError(t, err)
	res, err := p.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, "bg\n", string(res.Stdout))
	assert.True(t, kubernetes.UsesSPDY(b), "WebSocket execs need pods/exec get: SPDY's POST is the way with create alone")
	require.NoError(t, b.Close())

	// With get too, execs go over WebSocket.
	wsRules := append(backendRules[:1:1], rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create", "get"}})
	cfg.REST = asServiceAccount(t, "agentbe-websocket", wsRules)
	b, err = kubernetes.New(ctx, cfg)
	require.NoError(t, err)
	assert.Equal(t, "ws\n", run(t, b, "echo ws"))
	assert.False(t, kubernetes.UsesSPDY(b))
	require.NoError(t, b.Close())

	managerRules := append(backendRules[:1:1], rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"update"}}, backendRules[1])
	sessions := testConfig(t)
	sessions.REST = asServiceAccount(t, "agentbe-sessions", managerRules)
	m, err := kubernetes.NewSessionManager(kubernetes.SessionConfig{Config: sessions, WarmPods: 1})
	require.NoError(t, err)
	defer m.Shutdown(context.Background())
	s, err := m.GetOrCreate(ctx, "rbac")
	require.NoError(t, err)
	assert.Equal(t, "ok\n", run(t, s, "echo ok"))

	noExec := testConfig(t)
	noExec.REST = asServiceAccount(t, "agentbe-noexec", backendRules[:1])
	_, err = kubernetes.New(ctx, noExec)
	require.Error(t, err)
	assert.ErrorContains(t, err, "forbidden")
	assert.NotErrorIs(t, err, ab.ErrConnectionClosed)
}
