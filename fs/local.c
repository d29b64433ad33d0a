/* local.c: the `--local` supervisor (see local.h).
 *
 * Children run in process groups of their own, so a Ctrl-C at the terminal
 * reaches quorumfs alone, which then stops the nodes before meta (a node
 * that outlives meta only retries its heartbeats; the reverse order would
 * make meta mark live nodes down for nothing). Each child asks the kernel
 * for SIGTERM when quorumfs dies, so a killed quorumfs leaves no orphans.
 *
 * Once mounted, a watcher thread restarts a child that dies (local_watch).
 * The kernel sends a child's death signal when the THREAD that forked it
 * exits, so the watcher lives on until local_stop has stopped every child;
 * it holds the lock for each pass over the children and waits without it,
 * so local_stop, once it holds the lock with stopping set, knows no
 * restart is under way nor will be. */
#define _GNU_SOURCE   /* asprintf */
#include "fs/local.h"

#include "cluster/clock.h"
#include "cluster/log.h"
#include "cluster/net.h"
#include "cluster/rpc.h"
#include "quorum.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#define LOCAL_NODE_COUNT 3
#define LOCAL_URL_BYTES 64
#define LOCAL_STOP_WAIT_MS 10000
#define LOCAL_POLL_MS 100
/* A health probe gets this long before the next look at the children. */
#define LOCAL_PROBE_MS 1000
#define LOCAL_CLUSTER_JSON_VERSION 1
/* Restarts of a dead child: the first pause, doubling up to the last while
 * the child keeps dying within LOCAL_STABLE_MS of its start. */
#define LOCAL_RESTART_FIRST_MS 500
#define LOCAL_RESTART_MAX_MS 5000
#define LOCAL_STABLE_MS 10000
/* How often the watcher looks at the children. */
#define LOCAL_WATCH_POLL_MS 100
#define LOCAL_ARGV_MAX 12

static const char *const local_azs[LOCAL_NODE_COUNT] = { "a", "b", "c" };

struct local_child {
	const char *label;         /* "meta", "node-a", ... */
	char url[LOCAL_URL_BYTES];
	char *data_dir;            /* DATADIR/<label> */
	char *log_path;            /* DATADIR/<label>.log */
	pid_t pid;                 /* 0: not running (or reaped) */
	int64_t started_ms;        /* monotonic time of the last start */
	int64_t restart_at_ms;     /* dead: when to start it again; 0: not due */
	int64_t restart_delay_ms;  /* the pause before the next restart */
};

struct local_cluster {
	char *data_dir;            /* absolute */
	int lock_fd;
	char *meta_binary, *node_binary;
	/* [0] is meta, [1..3] the nodes of AZs a, b, c */
	struct local_child children[1 + LOCAL_NODE_COUNT];
	/* The watcher (local_watch). lock guards the children's pids and
	 * cluster.json once it runs; wake is on CLOCK_MONOTONIC. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t watcher;
	bool watching;
	bool stopping;             /* no more restarts */
	bool watch_exit;           /* the children are stopped: the watcher may end */
};

static void local_why(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void local_why(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, LOCAL_WHY_BYTES, fmt, ap);
	va_end(ap);
}

static char *local_path(const char *dir, const char *name, const char *suffix)
{
	char *path = NULL;

	if (asprintf(&path, "%s/%s%s", dir, name, suffix) < 0)
		return NULL;
	return path;
}

/* mkdir -p */
static int local_make_dirs(const char *path)
{
	char buffer[PATH_MAX];
	size_t length = strlen(path);

	if (length == 0 || length >= sizeof(buffer))
		return -ENAMETOOLONG;
	memcpy(buffer, path, length + 1);
	for (char *p = buffer + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buffer, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buffer, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------------- lock */

static int local_lock(struct local_cluster *cluster, char *why)
{
	char *path = local_path(cluster->data_dir, "lock", "");
	char pid_text[32] = "";
	ssize_t got;
	int fd, length;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		int err = -errno;
		local_why(why, "cannot open %s: %s", path, strerror(-err));
		free(path);
		return err;
	}
	free(path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		if (err == EWOULDBLOCK) {
			got = pread(fd, pid_text, sizeof(pid_text) - 1, 0);
			pid_text[got > 0 ? got : 0] = '\0';
			pid_text[strcspn(pid_text, "\n")] = '\0';
			local_why(why, "%s is in use by another quorumfs (pid %s)",
				  cluster->data_dir, pid_text[0] ? pid_text : "unknown");
			close(fd);
			return -EBUSY;
		}
		local_why(why, "cannot lock %s/lock: %s", cluster->data_dir, strerror(err));
		close(fd);
		return -err;
	}
	/* The pid in the lock file names the holder for the next one. */
	length = snprintf(pid_text, sizeof(pid_text), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid_text, (size_t)length, 0) != length)
		log_warn("cannot write the pid to %s/lock: %s", cluster->data_dir,
			 strerror(errno));
	cluster->lock_fd = fd;
	return 0;
}

/* ------------------------------------------------------------------ ports */

/* True when nothing listens on 127.0.0.1:port (as a server binds it). */
static bool local_port_is_free(int port)
{
	struct sockaddr_in address = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	bool free_port;

	if (fd < 0)
		return false;
	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	address.sin_port = htons((uint16_t)port);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	free_port = bind(fd, (struct sockaddr *)&address, sizeof(address)) == 0;
	close(fd);
	return free_port;
}

/* The port of "tcp://127.0.0.1:PORT", or 0. */
static int local_url_port(const char *url)
{
	static const char prefix[] = "tcp://127.0.0.1:";
	char *end;
	long port;

	if (!url || strncmp(url, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	errno = 0;
	port = strtol(url + sizeof(prefix) - 1, &end, 10);
	if (errno || *end || port <= 0 || port > 65535)
		return 0;
	return (int)port;
}

/* Ports recorded by an earlier run, by child index; 0 where unknown. */
static void local_read_old_ports(const struct local_cluster *cluster,
				 int ports[1 + LOCAL_NODE_COUNT])
{
	char *path = local_path(cluster->data_dir, "cluster.json", "");
	json_error_t error;
	json_t *root, *nodes, *node;
	size_t index;

	memset(ports, 0, sizeof(int) * (1 + LOCAL_NODE_COUNT));
	if (!path)
		return;
	if (access(path, F_OK) != 0) {
		free(path);
		return;
	}
	root = json_load_file(path, 0, &error);
	if (!root) {
		log_warn("%s unreadable (%s): choosing new ports", path, error.text);
		free(path);
		return;
	}
	free(path);
	ports[0] = local_url_port(json_string_value(json_object_get(root, "meta")));
	nodes = json_object_get(root, "nodes");
	json_array_foreach(nodes, index, node) {
		const char *az = json_string_value(json_object_get(node, "az"));
		const char *address = json_string_value(json_object_get(node, "address"));

		for (int i = 0; az && i < LOCAL_NODE_COUNT; i++) {
			if (strcmp(az, local_azs[i]) == 0)
				ports[1 + i] = local_url_port(address);
		}
	}
	json_decref(root);
}

static int local_choose_ports(struct local_cluster *cluster, char *why)
{
	int ports[1 + LOCAL_NODE_COUNT];

	local_read_old_ports(cluster, ports);
	for (int i = 0; i < 1 + LOCAL_NODE_COUNT; i++) {
		bool usable = ports[i] > 0 && local_port_is_free(ports[i]);

		for (int j = 0; usable && j < i; j++)
			usable = ports[j] != ports[i];
		/* A fresh port may collide with one chosen before it: draw
		 * again (the kernel hands out ports in a spread order). */
		for (int tries = 0; !usable && tries < 16; tries++) {
			ports[i] = net_find_free_port();
			if (ports[i] < 0) {
				local_why(why, "no free TCP port on 127.0.0.1: %s",
					  strerror(-ports[i]));
				return ports[i];
			}
			usable = true;
			for (int j = 0; j < i; j++)
				usable = usable && ports[j] != ports[i];
		}
		if (!usable) {
			local_why(why, "no free TCP port on 127.0.0.1");
			return -EADDRINUSE;
		}
		snprintf(cluster->children[i].url, LOCAL_URL_BYTES, "tcp://127.0.0.1:%d",
			 ports[i]);
	}
	return 0;
}

/* --------------------------------------------------------------- binaries */

static char *local_find_in_dir(const char *dir, const char *name)
{
	char *path = local_path(dir, name, "");

	if (path && access(path, X_OK) == 0)
		return path;
	free(path);
	return NULL;
}

/* Where name (quorum-meta, quorumd) is: $QUORUMFS_BINDIR, the directory of
 * this program, the build tree's sibling (build_dir: "meta", "cluster"),
 * then PATH. A malloc'd path, or NULL. */
static char *local_find_binary(const char *name, const char *build_dir)
{
	const char *bindir = getenv("QUORUMFS_BINDIR");
	char self[PATH_MAX];
	ssize_t length;
	char *found = NULL;

	if (bindir && *bindir) {
		found = local_find_in_dir(bindir, name);
		if (found)
			return found;
	}
	length = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (length > 0) {
		char *slash;

		self[length] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			char *sibling = NULL;

			*slash = '\0';
			found = local_find_in_dir(self, name);
			if (found)
				return found;
			if (asprintf(&sibling, "%s/../%s", self, build_dir) >= 0) {
				found = local_find_in_dir(sibling, name);
				free(sibling);
				if (found)
					return found;
			}
		}
	}
	const char *path_env = getenv("PATH");
	char *paths = strdup(path_env ? path_env : "/usr/local/bin:/usr/bin:/bin");
	char *saveptr = NULL;

	if (!paths)
		return NULL;
	for (char *dir = strtok_r(paths, ":", &saveptr); dir && !found;
	     dir = strtok_r(NULL, ":", &saveptr))
		found = local_find_in_dir(*dir ? dir : ".", name);
	free(paths);
	return found;
}

/* --------------------------------------------------------------- children */

static int local_child_prepare(struct local_cluster *cluster, struct local_child *child,
			       const char *label)
{
	child->label = label;
	child->data_dir = local_path(cluster->data_dir, label, "");
	child->log_path = local_path(cluster->data_dir, label, ".log");
	if (!child->data_dir || !child->log_path)
		return -ENOMEM;
	return 0;
}

/* Forks and execs argv with the child's log as stdout and stderr. */
static int local_child_spawn(struct local_child *child, char *const argv[], char *why)
{
	pid_t parent = getpid();
	int log_fd, null_fd;
	pid_t pid;
	int err = local_make_dirs(child->data_dir);

	if (err < 0) {
		local_why(why, "cannot create %s: %s", child->data_dir, strerror(-err));
		return err;
	}
	log_fd = open(child->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		err = -errno;
		local_why(why, "cannot open %s: %s", child->log_path, strerror(-err));
		return err;
	}
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0) {
		err = -errno;
		local_why(why, "cannot open /dev/null: %s", strerror(-err));
		close(log_fd);
		return err;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		err = -errno;
		local_why(why, "cannot start %s: fork: %s", child->label, strerror(-err));
		close(log_fd);
		close(null_fd);
		return err;
	}
	if (pid == 0) {
		sigset_t all;

		/* Its own group: terminal signals go to quorumfs only. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* The parent may have died before prctl took effect. */
		if (getppid() != parent)
			_exit(1);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
		    dup2(log_fd, STDERR_FILENO) < 0)
			_exit(127);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "quorumfs: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(log_fd);
	close(null_fd);
	child->pid = pid;
	return 0;
}

/* A sentence on how a reaped child ended. */
static void local_describe_status(int status, char *out, size_t out_bytes)
{
	if (WIFEXITED(status))
		snprintf(out, out_bytes, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, out_bytes, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, out_bytes, "stopped");
}

/* True (and why set) when one of the children has exited; it is reaped. */
static bool local_child_exited(struct local_cluster *cluster, char *why)
{
	for (int i = 0; i < 1 + LOCAL_NODE_COUNT; i++) {
		struct local_child *child = &cluster->children[i];
		char how[96];
		int status;

		if (child->pid <= 0 || waitpid(child->pid, &status, WNOHANG) != child->pid)
			continue;
		child->pid = 0;
		local_describe_status(status, how, sizeof(how));
		local_why(why, "%s %s during start-up: see %s", child->label, how,
			  child->log_path);
		return true;
	}
	return false;
}

/* Stops the given children: SIGTERM, a bounded wait, SIGKILL; reaps all. */
static void local_stop_children(struct local_child *children, int count)
{
	int64_t deadline_ms = clock_monotonic_ms() + LOCAL_STOP_WAIT_MS;
	bool waiting;

	for (int i = 0; i < count; i++) {
		if (children[i].pid > 0 && kill(children[i].pid, SIGTERM) < 0 && errno == ESRCH)
			log_warn("%s (pid %ld) was already gone", children[i].label,
				 (long)children[i].pid);
	}
	do {
		waiting = false;
		for (int i = 0; i < count; i++) {
			pid_t got;

			if (children[i].pid <= 0)
				continue;
			got = waitpid(children[i].pid, NULL, WNOHANG);
			if (got == children[i].pid || (got < 0 && errno == ECHILD))
				children[i].pid = 0;
			else
				waiting = true;
		}
		if (waiting)
			clock_sleep_ms(50);
	} while (waiting && clock_remaining_ms(deadline_ms) > 0);
	for (int i = 0; i < count; i++) {
		if (children[i].pid <= 0)
			continue;
		log_warn("%s (pid %ld) did not stop in %d s: killing it", children[i].label,
			 (long)children[i].pid, LOCAL_STOP_WAIT_MS / 1000);
		kill(children[i].pid, SIGKILL);
		while (waitpid(children[i].pid, NULL, 0) < 0 && errno == EINTR)
			;
		children[i].pid = 0;
	}
}

void local_stop(struct local_cluster *cluster)
{
	if (!cluster)
		return;
	if (cluster->watching) {
		/* Once this lock is ours the watcher waits: no restart is
		 * under way, and with stopping set none will start. */
		pthread_mutex_lock(&cluster->lock);
		cluster->stopping = true;
		pthread_cond_broadcast(&cluster->wake);
		pthread_mutex_unlock(&cluster->lock);
	}
	local_stop_children(&cluster->children[1], LOCAL_NODE_COUNT);
	local_stop_children(&cluster->children[0], 1);
	if (cluster->watching) {
		/* Only now: the children it started die with it. */
		pthread_mutex_lock(&cluster->lock);
		cluster->watch_exit = true;
		pthread_cond_broadcast(&cluster->wake);
		pthread_mutex_unlock(&cluster->lock);
		pthread_join(cluster->watcher, NULL);
		cluster->watching = false;
	}
}

/* ----------------------------------------------------------- cluster.json */

static int local_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

static json_t *local_cluster_json(const struct local_cluster *cluster)
{
	json_t *root = json_object(), *nodes = json_array();

	if (!root || !nodes)
		goto failed;
	if (json_object_set_new(root, "version", json_integer(LOCAL_CLUSTER_JSON_VERSION)) ||
	    json_object_set_new(root, "meta", json_string(cluster->children[0].url)))
		goto failed;
	for (int i = 0; i < LOCAL_NODE_COUNT; i++) {
		const struct local_child *child = &cluster->children[1 + i];
		json_t *node = json_pack("{s:s, s:s, s:s, s:I}", "az", local_azs[i], "address",
					 child->url, "data", child->data_dir, "pid",
					 (json_int_t)child->pid);

		if (!node || json_array_append_new(nodes, node))
			goto failed;
	}
	if (json_object_set(root, "nodes", nodes) ||
	    json_object_set_new(root, "meta_pid", json_integer(cluster->children[0].pid)) ||
	    json_object_set_new(root, "quorumfs_pid", json_integer(getpid())))
		goto failed;
	json_decref(nodes);
	return root;

failed:
	json_decref(nodes);
	json_decref(root);
	return NULL;
}

/* Temp file, fsync, rename, fsync of the directory: a reader sees the old
 * file or the new one, never a torn one, even after a crash. */
static int local_write_cluster_json(const struct local_cluster *cluster, char *why)
{
	char *path = local_path(cluster->data_dir, "cluster.json", "");
	char *temp = local_path(cluster->data_dir, "cluster.json", ".tmp");
	json_t *root = local_cluster_json(cluster);
	char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
	int err = 0, fd = -1;
	size_t length, written = 0;

	if (!path || !temp || !text) {
		err = -ENOMEM;
		local_why(why, "out of memory writing cluster.json");
		goto out;
	}
	length = strlen(text);
	fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto io_error;
	while (written < length) {
		ssize_t n = write(fd, text + written, length - written);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto io_error;
		written += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) < 0)
		goto io_error;
	if (close(fd) < 0) {
		fd = -1;
		goto io_error;
	}
	fd = -1;
	if (rename(temp, path) < 0)
		goto io_error;
	err = local_fsync_dir(cluster->data_dir);
	if (err < 0)
		local_why(why, "cannot sync %s: %s", cluster->data_dir, strerror(-err));
	goto out;

io_error:
	err = -errno;
	local_why(why, "cannot write %s: %s", path ? path : "cluster.json", strerror(-err));
	if (fd >= 0)
		close(fd);
	unlink(temp);
out:
	free(text);
	json_decref(root);
	free(path);
	free(temp);
	return err;
}

/* ----------------------------------------------------------------- health */

/* True when meta answers and lists an up node in each of our AZs. */
static bool local_is_healthy(struct net_client *meta, int64_t deadline_ms, char *state,
			     size_t state_bytes)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ListNodesRequest list = QUORUM__LIST_NODES_REQUEST__INIT;
	Quorum__Response *response = NULL;
	struct rpc_error error = { 0 };
	bool up[LOCAL_NODE_COUNT] = { false };
	bool healthy = true;
	int err;

	/* ListNodes answers only if meta runs: it doubles as the ping. */
	request.op_case = QUORUM__REQUEST__OP_LIST_NODES;
	request.list_nodes = &list;
	err = rpc_call(meta, &request, deadline_ms, &response, &error);
	if (err < 0) {
		snprintf(state, state_bytes, "the metadata service did not answer (%s)",
			 error.why);
		return false;
	}
	for (size_t i = 0; i < response->list_nodes->n_nodes; i++) {
		const Quorum__NodeInfo *node = response->list_nodes->nodes[i];

		for (int j = 0; j < LOCAL_NODE_COUNT; j++) {
			if (node->up && strcmp(node->az, local_azs[j]) == 0)
				up[j] = true;
		}
	}
	quorum__response__free_unpacked(response, NULL);
	for (int j = 0; j < LOCAL_NODE_COUNT; j++) {
		if (!up[j]) {
			snprintf(state, state_bytes, "no node of AZ %s is up at the metadata "
				 "service (see node-%s.log)", local_azs[j], local_azs[j]);
			healthy = false;
			break;
		}
	}
	return healthy;
}

static int local_wait_healthy(struct local_cluster *cluster, int64_t deadline_ms, char *why)
{
	struct net_pool *pool = net_pool_new();
	struct net_client *meta = pool ? net_pool_get(pool, cluster->children[0].url) : NULL;
	char state[RPC_WHY_BYTES + 64] = "nothing checked yet";
	int err = -ETIMEDOUT;

	if (!meta) {
		net_pool_free(pool);
		local_why(why, "out of memory");
		return -ENOMEM;
	}
	for (;;) {
		int64_t probe_deadline_ms = clock_monotonic_ms() + LOCAL_PROBE_MS;

		if (local_child_exited(cluster, why)) {
			err = -ECHILD;
			break;
		}
		if (probe_deadline_ms > deadline_ms)
			probe_deadline_ms = deadline_ms;
		if (local_is_healthy(meta, probe_deadline_ms, state, sizeof(state))) {
			err = 0;
			break;
		}
		if (clock_remaining_ms(deadline_ms) <= LOCAL_POLL_MS) {
			local_why(why, "the local cluster was not healthy in time: %s; logs in %s",
				  state, cluster->data_dir);
			break;
		}
		clock_sleep_ms(LOCAL_POLL_MS);
	}
	net_pool_free(pool);
	return err;
}

/* ------------------------------------------------------------------ start */

/* The command line of child index (0: meta, 1..3: nodes); pointers into
 * cluster, valid while it lives. */
static void local_child_argv(struct local_cluster *cluster, int index,
			     char *argv[LOCAL_ARGV_MAX])
{
	struct local_child *child = &cluster->children[index];
	int n = 0;

	if (index == 0) {
		argv[n++] = cluster->meta_binary;
		argv[n++] = "--listen";
		argv[n++] = child->url;
		argv[n++] = "--data";
		argv[n++] = child->data_dir;
	} else {
		argv[n++] = cluster->node_binary;
		argv[n++] = "--listen";
		argv[n++] = child->url;
		argv[n++] = "--meta";
		argv[n++] = cluster->children[0].url;
		argv[n++] = "--az";
		argv[n++] = (char *)local_azs[index - 1];
		argv[n++] = "--data";
		argv[n++] = child->data_dir;
	}
	argv[n] = NULL;
}

static int local_spawn_all(struct local_cluster *cluster, char *why)
{
	char *argv[LOCAL_ARGV_MAX];
	int err;

	cluster->meta_binary = local_find_binary("quorum-meta", "meta");
	cluster->node_binary = local_find_binary("quorumd", "cluster");
	if (!cluster->meta_binary || !cluster->node_binary) {
		local_why(why, "cannot find %s: set QUORUMFS_BINDIR, or install it next to "
			  "quorumfs or in PATH", !cluster->meta_binary ? "quorum-meta" : "quorumd");
		return -ENOENT;
	}
	for (int i = 0; i < 1 + LOCAL_NODE_COUNT; i++) {
		struct local_child *child = &cluster->children[i];

		local_child_argv(cluster, i, argv);
		err = local_child_spawn(child, argv, why);
		if (err < 0)
			return err;
		child->started_ms = clock_monotonic_ms();
		child->restart_delay_ms = LOCAL_RESTART_FIRST_MS;
		if (i == 0)
			log_info("started quorum-meta (pid %ld) at %s", (long)child->pid,
				 child->url);
		else
			log_info("started quorumd %s (pid %ld) at %s", local_azs[i - 1],
				 (long)child->pid, child->url);
	}
	return 0;
}

/* ---------------------------------------------------------------- watcher */

static int local_sync_init(struct local_cluster *cluster)
{
	pthread_condattr_t attr;
	int err;

	err = pthread_mutex_init(&cluster->lock, NULL);
	if (err)
		return -err;
	err = pthread_condattr_init(&attr);
	if (!err) {
		err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		if (!err)
			err = pthread_cond_init(&cluster->wake, &attr);
		pthread_condattr_destroy(&attr);
	}
	if (err) {
		pthread_mutex_destroy(&cluster->lock);
		return -err;
	}
	return 0;
}

/* Waits on wake (lock held) for at most wait_ms. */
static void local_watch_sleep(struct local_cluster *cluster, int64_t wait_ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&cluster->wake, &cluster->lock, &until);
}

/* Reaps child index if it died, and schedules its restart. */
static void local_watch_reap(struct local_cluster *cluster, int index, int64_t now_ms)
{
	struct local_child *child = &cluster->children[index];
	char how[96];
	int status = 0;
	pid_t got = waitpid(child->pid, &status, WNOHANG);

	if (got == 0 || (got < 0 && errno != ECHILD))
		return;
	if (got < 0)
		snprintf(how, sizeof(how), "was reaped by someone else");
	else
		local_describe_status(status, how, sizeof(how));
	/* A child that ran a while gets the first pause again; one that
	 * keeps dying soon after its start, longer and longer ones. */
	if (now_ms - child->started_ms >= LOCAL_STABLE_MS)
		child->restart_delay_ms = LOCAL_RESTART_FIRST_MS;
	log_warn("%s (pid %ld) %s; starting it again in %lld ms (its log: %s)", child->label,
		 (long)child->pid, how, (long long)child->restart_delay_ms, child->log_path);
	child->pid = 0;
	child->restart_at_ms = now_ms + child->restart_delay_ms;
	child->restart_delay_ms *= 2;
	if (child->restart_delay_ms > LOCAL_RESTART_MAX_MS)
		child->restart_delay_ms = LOCAL_RESTART_MAX_MS;
}

/* Starts child index again, with the arguments of its first start. */
static void local_watch_restart(struct local_cluster *cluster, int index, int64_t now_ms)
{
	struct local_child *child = &cluster->children[index];
	char *argv[LOCAL_ARGV_MAX];
	char why[LOCAL_WHY_BYTES];
	int err;

	local_child_argv(cluster, index, argv);
	err = local_child_spawn(child, argv, why);
	if (err < 0) {
		child->restart_at_ms = now_ms + child->restart_delay_ms;
		log_warn("cannot start %s again: %s; next try in %lld ms", child->label, why,
			 (long long)child->restart_delay_ms);
		child->restart_delay_ms *= 2;
		if (child->restart_delay_ms > LOCAL_RESTART_MAX_MS)
			child->restart_delay_ms = LOCAL_RESTART_MAX_MS;
		return;
	}
	child->started_ms = now_ms;
	child->restart_at_ms = 0;
	log_info("started %s again (pid %ld) at %s", child->label, (long)child->pid, child->url);
	/* Tests and quorumctl find the new pid there. */
	err = local_write_cluster_json(cluster, why);
	if (err < 0)
		log_warn("%s", why);
}

static void *local_watch_run(void *arg)
{
	struct local_cluster *cluster = arg;

	pthread_mutex_lock(&cluster->lock);
	while (!cluster->stopping) {
		int64_t now_ms = clock_monotonic_ms();

		for (int i = 0; i < 1 + LOCAL_NODE_COUNT; i++) {
			struct local_child *child = &cluster->children[i];

			if (child->pid > 0)
				local_watch_reap(cluster, i, now_ms);
			else if (child->restart_at_ms > 0 && now_ms >= child->restart_at_ms)
				local_watch_restart(cluster, i, now_ms);
		}
		local_watch_sleep(cluster, LOCAL_WATCH_POLL_MS);
	}
	while (!cluster->watch_exit)
		pthread_cond_wait(&cluster->wake, &cluster->lock);
	pthread_mutex_unlock(&cluster->lock);
	return NULL;
}

int local_watch(struct local_cluster *cluster)
{
	sigset_t all, old;
	int err;

	if (cluster->watching)
		return 0;
	/* Signals are for the threads that serve the mount, not this one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&cluster->watcher, NULL, local_watch_run, cluster);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		log_error("cannot start the supervisor thread: %s", strerror(err));
		return -err;
	}
	cluster->watching = true;
	return 0;
}

int local_start(const char *data_dir, int64_t timeout_ms, struct local_cluster **out, char *why)
{
	static const char *const labels[1 + LOCAL_NODE_COUNT] = {
		"meta", "node-a", "node-b", "node-c"
	};
	int64_t deadline_ms = clock_monotonic_ms() + timeout_ms;
	struct local_cluster *cluster;
	char resolved[PATH_MAX];
	int err;

	*out = NULL;
	why[0] = '\0';
	cluster = calloc(1, sizeof(*cluster));
	if (!cluster) {
		local_why(why, "out of memory");
		return -ENOMEM;
	}
	cluster->lock_fd = -1;
	err = local_sync_init(cluster);
	if (err < 0) {
		local_why(why, "cannot make the supervisor's lock: %s", strerror(-err));
		free(cluster);
		return err;
	}
	err = local_make_dirs(data_dir);
	if (err < 0) {
		local_why(why, "cannot create %s: %s", data_dir, strerror(-err));
		goto failed;
	}
	if (!realpath(data_dir, resolved)) {
		err = -errno;
		local_why(why, "cannot resolve %s: %s", data_dir, strerror(-err));
		goto failed;
	}
	cluster->data_dir = strdup(resolved);
	if (!cluster->data_dir) {
		err = -ENOMEM;
		local_why(why, "out of memory");
		goto failed;
	}
	err = local_lock(cluster, why);
	if (err < 0)
		goto failed;
	for (int i = 0; i < 1 + LOCAL_NODE_COUNT; i++) {
		err = local_child_prepare(cluster, &cluster->children[i], labels[i]);
		if (err < 0) {
			local_why(why, "out of memory");
			goto failed;
		}
	}
	err = local_choose_ports(cluster, why);
	if (err < 0)
		goto failed;
	err = local_spawn_all(cluster, why);
	if (err < 0)
		goto failed;
	err = local_write_cluster_json(cluster, why);
	if (err < 0)
		goto failed;
	err = local_wait_healthy(cluster, deadline_ms, why);
	if (err < 0)
		goto failed;
	log_info("local cluster healthy: meta at %s, data in %s", cluster->children[0].url,
		 cluster->data_dir);
	*out = cluster;
	return 0;

failed:
	local_free(cluster);
	return err;
}

const char *local_meta_url(const struct local_cluster *cluster)
{
	return cluster->children[0].url;
}

const char *local_data_dir(const struct local_cluster *cluster)
{
	return cluster->data_dir;
}

void local_free(struct local_cluster *cluster)
{
	if (!cluster)
		return;
	local_stop(cluster);
	for (int i = 0; i < 1 + LOCAL_NODE_COUNT; i++) {
		free(cluster->children[i].data_dir);
		free(cluster->children[i].log_path);
	}
	free(cluster->meta_binary);
	free(cluster->node_binary);
	pthread_cond_destroy(&cluster->wake);
	pthread_mutex_destroy(&cluster->lock);
	if (cluster->lock_fd >= 0)
		close(cluster->lock_fd);
	free(cluster->data_dir);
	free(cluster);
}
