/* main.c: the quorumfs program. Parses the command line, starts the local
 * cluster (--local) or finds a metadata service (-o meta=...), makes the
 * router and serves the mount until it is unmounted or signalled.
 *
 * Without -f the program forks first; the parent waits on a pipe and exits
 * 0 only once the child reports that the mount is in place, so a script
 * that runs `quorumfs ... && ls MOUNTPOINT` never races the mount. Until
 * then errors go to the terminal's stderr; afterwards the daemon writes its
 * log to the log file. */
#define _GNU_SOURCE   /* asprintf, pipe2 */
#include "config.h"

#include "cluster/clock.h"
#include "cluster/log.h"
#include "cluster/net.h"
#include "cluster/rpc.h"
#include "fs/fuse_ops.h"
#include "fs/local.h"
#include "fs/router.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAIN_TIMEOUT_DEFAULT_MS 30000
#define MAIN_TIMEOUT_MAX_S 86400
#define MAIN_THREADS_DEFAULT 16
#define MAIN_THREADS_MAX 1024
#define MAIN_META_URLS_MAX 16
#define MAIN_OPTION_LISTS_MAX 64
#define MAIN_EXIT_USAGE 2

/* The mounted status byte the daemon sends its waiting parent. */
#define MAIN_STATUS_MOUNTED 'M'

struct main_options {
	bool foreground;
	bool debug;
	bool allow_other;
	bool eventual;
	int64_t timeout_ms;
	int threads;
	const char *log_path;              /* NULL: the default */
	const char *local_dir;             /* --local DATADIR */
	const char *meta_urls[MAIN_META_URLS_MAX];
	size_t meta_url_count;
	const char *mountpoint;
	/* Copies of the -o lists (the values above point into them), so
	 * that argv, which ps shows, stays as it was typed. */
	char *option_lists[MAIN_OPTION_LISTS_MAX];
	size_t option_list_count;
};

/* What on_mounted needs. */
struct main_daemon {
	int status_fd;                     /* the waiting parent's pipe; -1 in -f mode */
	int log_fd;                        /* the log once detached; -1 in -f mode */
	char *pid_path;                    /* DATADIR/quorumfs.pid or NULL */
	bool pid_written;
	bool mounted;
};

static void main_usage(FILE *out)
{
	fprintf(out,
"Usage: quorumfs [options] --local DATADIR MOUNTPOINT\n"
"       quorumfs [options] -o meta=tcp://HOST:PORT[,tcp://HOST:PORT...] MOUNTPOINT\n"
"\n"
"Mounts a quorumfs cluster: directories are tables, files are items.\n"
"\n"
"  --local DATADIR   start a local cluster (one quorum-meta, three quorumd in AZs\n"
"                    a, b, c on 127.0.0.1) as children, with all state in DATADIR\n"
"                    (created when missing), and mount it; unmounting stops it.\n"
"                    The addresses and pids are written to DATADIR/cluster.json.\n"
"                    A child that dies while mounted is started again.\n"
"  -o meta=URL[,URL...]\n"
"                    mount a cluster that runs elsewhere; with replicated\n"
"                    metadata services, give each URL (in their --peers order):\n"
"                    requests go to the one that leads, and fail over\n"
"\n"
"Options:\n"
"  -f                stay in the foreground (log on stderr)\n"
"  -d                FUSE debug trace on stderr; implies -f\n"
"  -o timeout=SECONDS\n"
"                    deadline of each request; past it the caller gets EIO\n"
"                    (default 30, > 0); also bounds the start of --local\n"
"  -o consistency=strong|eventual\n"
"                    strong (default): reads at the partition leader;\n"
"                    eventual: reads at any replica, longer kernel caching\n"
"  -o allow_other    let other users use the mount (needs user_allow_other in\n"
"                    /etc/fuse.conf unless root); enables default_permissions,\n"
"                    so the stored mode, uid and gid are enforced\n"
"  -o threads=N      FUSE worker threads (default 16)\n"
"  -o log=FILE       where the daemon logs once detached (default\n"
"                    DATADIR/quorumfs.log with --local, /dev/null otherwise)\n"
"  -h, --help        this help\n"
"  -V, --version     the version\n"
"\n"
"Several -o may be given; each takes a comma-separated list, in which a token\n"
"that starts with tcp:// continues the list of meta URLs.\n"
"\n"
"Environment: QUORUMFS_BINDIR, where --local looks first for quorum-meta and\n"
"quorumd (then next to quorumfs, the build tree, and PATH).\n"
"\n"
"Unmount with `fusermount3 -u MOUNTPOINT` (or umount as root), or send SIGTERM.\n");
}

static void main_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void main_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "quorumfs: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'quorumfs --help' for more information.\n");
	exit(MAIN_EXIT_USAGE);
}

static bool main_starts_with(const char *text, const char *prefix)
{
	return strncmp(text, prefix, strlen(prefix)) == 0;
}

static void main_add_meta_url(struct main_options *options, const char *url)
{
	if (!main_starts_with(url, "tcp://") || strlen(url) <= strlen("tcp://"))
		main_usage_error("bad metadata URL '%s' (expected tcp://HOST:PORT)", url);
	if (options->meta_url_count == MAIN_META_URLS_MAX)
		main_usage_error("too many metadata URLs (at most 16): '%s'", url);
	options->meta_urls[options->meta_url_count++] = url;
}

/* Parses one -o list; options keep pointers into a copy of it. */
static void main_parse_mount_options(struct main_options *options, const char *text)
{
	char *saveptr = NULL, *list;

	if (options->option_list_count == MAIN_OPTION_LISTS_MAX)
		main_usage_error("too many -o options (at most %d)", MAIN_OPTION_LISTS_MAX);
	list = strdup(text);
	if (!list) {
		fprintf(stderr, "quorumfs: out of memory\n");
		exit(1);
	}
	options->option_lists[options->option_list_count++] = list;

	for (char *token = strtok_r(list, ",", &saveptr); token;
	     token = strtok_r(NULL, ",", &saveptr)) {
		char *value = strchr(token, '=');
		char *end;

		if (main_starts_with(token, "tcp://")) {
			main_add_meta_url(options, token);
			continue;
		}
		if (value)
			*value++ = '\0';
		if (strcmp(token, "allow_other") == 0 && !value) {
			options->allow_other = true;
		} else if (strcmp(token, "meta") == 0 && value) {
			main_add_meta_url(options, value);
		} else if (strcmp(token, "timeout") == 0 && value) {
			double seconds;

			errno = 0;
			seconds = strtod(value, &end);
			if (errno || end == value || *end || !(seconds > 0) ||
			    seconds > MAIN_TIMEOUT_MAX_S)
				main_usage_error("bad timeout '%s' (seconds, > 0)", value);
			options->timeout_ms = (int64_t)(seconds * 1000);
			if (options->timeout_ms < 1)
				options->timeout_ms = 1;
		} else if (strcmp(token, "consistency") == 0 && value) {
			if (strcmp(value, "strong") == 0)
				options->eventual = false;
			else if (strcmp(value, "eventual") == 0)
				options->eventual = true;
			else
				main_usage_error("bad consistency '%s' (strong or eventual)",
						 value);
		} else if (strcmp(token, "threads") == 0 && value) {
			long threads;

			errno = 0;
			threads = strtol(value, &end, 10);
			if (errno || end == value || *end || threads < 1 ||
			    threads > MAIN_THREADS_MAX)
				main_usage_error("bad thread count '%s' (1 to 1024)", value);
			options->threads = (int)threads;
		} else if (strcmp(token, "log") == 0 && value && *value) {
			options->log_path = value;
		} else {
			if (value)
				value[-1] = '=';
			main_usage_error("unknown mount option '%s'", token);
		}
	}
}

static void main_free_options(struct main_options *options)
{
	for (size_t i = 0; i < options->option_list_count; i++)
		free(options->option_lists[i]);
	options->option_list_count = 0;
}

static void main_parse_args(int argc, char **argv, struct main_options *options)
{
	static const struct option long_options[] = {
		{ "local", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(options, 0, sizeof(*options));
	options->timeout_ms = MAIN_TIMEOUT_DEFAULT_MS;
	options->threads = MAIN_THREADS_DEFAULT;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":fdo:hV", long_options, NULL)) != -1) {
		switch (c) {
		case 'f':
			options->foreground = true;
			break;
		case 'd':
			options->debug = true;
			options->foreground = true;
			break;
		case 'o':
			main_parse_mount_options(options, optarg);
			break;
		case 'L':
			options->local_dir = optarg;
			break;
		case 'h':
			main_usage(stdout);
			exit(0);
		case 'V':
			printf("quorumfs %s\n", PACKAGE_VERSION);
			exit(0);
		case ':':
			main_usage_error("option '%s' needs an argument", argv[optind - 1]);
			break;
		default:
			if (optopt)
				main_usage_error("unknown option '-%c'", optopt);
			main_usage_error("unknown option '%s'", argv[optind - 1]);
			break;
		}
	}
	if (optind == argc)
		main_usage_error("%s", "no MOUNTPOINT given");
	if (argc - optind > 1)
		main_usage_error("unexpected argument '%s'", argv[optind + 1]);
	options->mountpoint = argv[optind];
	if (options->local_dir && options->meta_url_count > 0)
		main_usage_error("%s", "--local and -o meta= exclude each other");
	if (!options->local_dir && options->meta_url_count == 0)
		main_usage_error("%s", "give --local DATADIR or -o meta=tcp://HOST:PORT");
}

/* ----------------------------------------------------------- the mount point */

/* A quorumfs that died leaves its mount behind: every access fails with
 * ENOTCONN. Detach it so the new mount can take its place. */
static void main_clear_stale_mount(const char *mountpoint)
{
	struct stat st;
	pid_t pid;
	int status;

	if (stat(mountpoint, &st) == 0 || errno != ENOTCONN)
		return;
	log_warn("%s is a stale mount (its daemon died): unmounting it", mountpoint);
	if (geteuid() == 0 && umount2(mountpoint, MNT_DETACH) == 0)
		return;
	pid = fork();
	if (pid < 0) {
		log_warn("cannot run fusermount3: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-uz", mountpoint, (char *)NULL);
		dprintf(STDERR_FILENO, "quorumfs: cannot run fusermount3: %s\n", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		log_warn("fusermount3 -uz %s failed", mountpoint);
}

/* Checks the mount point and returns its absolute path (malloc'd). */
static char *main_resolve_mountpoint(const char *mountpoint)
{
	char resolved[PATH_MAX];
	struct stat st;

	main_clear_stale_mount(mountpoint);
	if (!realpath(mountpoint, resolved) || stat(resolved, &st) < 0) {
		fprintf(stderr, "quorumfs: cannot use mount point %s: %s\n", mountpoint,
			strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "quorumfs: mount point %s is not a directory\n", mountpoint);
		return NULL;
	}
	return strdup(resolved);
}

/* An absolute form of path, resolved against the current directory now,
 * before the daemon moves to "/". */
static char *main_absolute_path(const char *path)
{
	char cwd[PATH_MAX];
	char *out = NULL;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

/* ------------------------------------------------------------ meta discovery */

/* Every metadata URL given, as one comma-separated list for the router, which fails over
 * between replicated metas (cluster/meta_client.h); malloc'd, NULL when out of memory. */
static char *main_join_meta_urls(const struct main_options *options)
{
	size_t size_bytes = 1, used = 0;
	char *list;

	for (size_t i = 0; i < options->meta_url_count; i++)
		size_bytes += strlen(options->meta_urls[i]) + 1;
	list = malloc(size_bytes);
	if (!list)
		return NULL;
	list[0] = '\0';
	for (size_t i = 0; i < options->meta_url_count; i++)
		used += (size_t)snprintf(list + used, size_bytes - used, "%s%s", i ? "," : "",
					 options->meta_urls[i]);
	return list;
}

/* ------------------------------------------------------------------ daemon */

static int main_write_pid_file(const char *path)
{
	char text[32];
	int length = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, (size_t)length) != length)
		err = errno ? -errno : -EIO;
	if (close(fd) < 0 && err == 0)
		err = -errno;
	return err;
}

static void main_on_mounted(void *arg)
{
	struct main_daemon *daemon = arg;
	char status = MAIN_STATUS_MOUNTED;
	int null_fd;

	if (daemon->pid_path) {
		int err = main_write_pid_file(daemon->pid_path);
		if (err < 0)
			log_warn("cannot write %s: %s", daemon->pid_path, strerror(-err));
		else
			daemon->pid_written = true;
	}
	daemon->mounted = true;
	if (daemon->status_fd < 0)
		return;
	/* The parent exits 0 on this byte and gives the terminal back. */
	if (write(daemon->status_fd, &status, 1) != 1)
		log_warn("cannot tell the waiting parent: %s", strerror(errno));
	close(daemon->status_fd);
	daemon->status_fd = -1;
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		close(null_fd);
	}
	fflush(stdout);
	fflush(stderr);
	dup2(daemon->log_fd, STDOUT_FILENO);
	dup2(daemon->log_fd, STDERR_FILENO);
	close(daemon->log_fd);
	daemon->log_fd = -1;
	if (chdir("/") < 0)
		log_warn("cannot change to /: %s", strerror(errno));
}

/* The parent's side of the fork: waits for the mounted byte. */
static int main_wait_for_child(int status_fd, pid_t child)
{
	char status = 0;
	ssize_t got;

	do {
		got = read(status_fd, &status, 1);
	} while (got < 0 && errno == EINTR);
	if (got == 1 && status == MAIN_STATUS_MOUNTED)
		return 0;
	/* The child printed its error and exited; collect it. */
	waitpid(child, NULL, 0);
	return 1;
}

/* Runs the mount; returns the process's exit status. */
static int main_run(const struct main_options *options, const char *mountpoint, int status_fd)
{
	struct main_daemon daemon = { .status_fd = status_fd, .log_fd = -1 };
	struct local_cluster *cluster = NULL;
	struct router *router = NULL;
	struct router_options router_options = {
		.timeout_ms = options->timeout_ms,
		.consistency = options->eventual ? ROUTER_CONSISTENCY_EVENTUAL :
						   ROUTER_CONSISTENCY_STRONG,
	};
	struct fs_config config = {
		.mountpoint = mountpoint,
		.debug = options->debug,
		.allow_other = options->allow_other,
		.eventual = options->eventual,
		.max_threads = options->threads,
	};
	char why[LOCAL_WHY_BYTES];
	char *log_path = NULL, *meta_urls = NULL;
	int exit_status = 1;
	int err;

	if (options->local_dir) {
		err = local_start(options->local_dir, options->timeout_ms, &cluster, why);
		if (err < 0) {
			fprintf(stderr, "quorumfs: %s\n", why);
			goto out;
		}
		/* From now on a child that dies is started again. */
		err = local_watch(cluster);
		if (err < 0) {
			fprintf(stderr, "quorumfs: cannot watch the local cluster: %s\n",
				strerror(-err));
			goto out;
		}
		router_options.meta_url = local_meta_url(cluster);
		if (asprintf(&daemon.pid_path, "%s/quorumfs.pid", local_data_dir(cluster)) < 0) {
			daemon.pid_path = NULL;
			fprintf(stderr, "quorumfs: out of memory\n");
			goto out;
		}
	} else {
		meta_urls = main_join_meta_urls(options);
		if (!meta_urls) {
			fprintf(stderr, "quorumfs: out of memory\n");
			goto out;
		}
		router_options.meta_url = meta_urls;
	}

	if (status_fd >= 0) {
		/* Opened now, so a bad path is reported on the terminal. */
		if (options->log_path)
			log_path = main_absolute_path(options->log_path);
		else if (cluster && asprintf(&log_path, "%s/quorumfs.log",
					     local_data_dir(cluster)) < 0)
			log_path = NULL;
		else if (!cluster)
			log_path = strdup("/dev/null");
		if (!log_path) {
			fprintf(stderr, "quorumfs: out of memory\n");
			goto out;
		}
		daemon.log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (daemon.log_fd < 0) {
			fprintf(stderr, "quorumfs: cannot open log file %s: %s\n", log_path,
				strerror(errno));
			goto out;
		}
	}

	err = router_new(&router_options, &router);
	if (err < 0) {
		if (err == -ENOMEM)
			fprintf(stderr, "quorumfs: out of memory\n");
		else
			fprintf(stderr, "quorumfs: no metadata service answered at %s: "
				"is the cluster running?\n", router_options.meta_url);
		goto out;
	}
	log_info("metadata service %s; request timeout %lld ms; mounting %s",
		 router_options.meta_url, (long long)options->timeout_ms, mountpoint);

	err = fs_serve(router, &config, main_on_mounted, &daemon);
	if (err < 0) {
		/* Before the mount, stderr is still the terminal's. */
		if (!daemon.mounted)
			fprintf(stderr, "quorumfs: cannot mount %s: %s\n", mountpoint,
				strerror(-err));
		else
			log_error("serving %s ended: %s", mountpoint, strerror(-err));
		goto out;
	}
	log_info("unmounted %s", mountpoint);
	exit_status = 0;

out:
	router_free(router);
	if (cluster) {
		log_info("stopping the local cluster");
		local_free(cluster);
	}
	if (daemon.pid_written)
		unlink(daemon.pid_path);
	free(daemon.pid_path);
	free(log_path);
	free(meta_urls);
	if (daemon.log_fd >= 0)
		close(daemon.log_fd);
	if (daemon.status_fd >= 0)
		close(daemon.status_fd);
	return exit_status;
}

int main(int argc, char **argv)
{
	struct main_options options;
	char *mountpoint;
	int status_pipe[2] = { -1, -1 };
	int exit_status = 1;
	pid_t pid;

	log_set_program("quorumfs");
	main_parse_args(argc, argv, &options);
	/* A reply to a peer that went away must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);

	mountpoint = main_resolve_mountpoint(options.mountpoint);
	if (!mountpoint)
		goto out;
	if (options.foreground) {
		exit_status = main_run(&options, mountpoint, -1);
		goto out;
	}
	if (pipe2(status_pipe, O_CLOEXEC) < 0) {
		fprintf(stderr, "quorumfs: pipe: %s\n", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "quorumfs: fork: %s\n", strerror(errno));
		close(status_pipe[0]);
		close(status_pipe[1]);
		goto out;
	}
	if (pid > 0) {
		close(status_pipe[1]);
		exit_status = main_wait_for_child(status_pipe[0], pid);
		close(status_pipe[0]);
		goto out;
	}
	close(status_pipe[0]);
	/* A session of its own: the terminal's hangup does not reach it. */
	if (setsid() < 0)
		log_warn("setsid: %s", strerror(errno));
	exit_status = main_run(&options, mountpoint, status_pipe[1]);
out:
	free(mountpoint);
	main_free_options(&options);
	return exit_status;
}
