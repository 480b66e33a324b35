/* echo-server.c - a TCP echo server on fd readiness, one task per client:
 *  - the listening socket on 127.0.0.1 (port 0: any free port) is
 *    non-blocking; the accept task awaits afut_fd_wait (listen_fd,
 *    AFUT_IO_IN), then accepts every pending connection and spawns an
 *    echo task for each;
 *  - an echo task loops afut_fd_read() / afut_fd_write_all() until the
 *    client closes its side; a done callback closes the socket, however
 *    the task ended (a `finally:`);
 *  - with --self-test, clients run on the same loop: each connects (a
 *    non-blocking connect(), then awaits writable), writes its lines while
 *    a second task reads the echo back (a gather of the two: a long
 *    message fills the socket buffers both ways, so writing and reading
 *    must overlap), and checks what came back.  The program prints a
 *    summary and exits 0 if every echo came back intact.  Without it, it
 *    serves until SIGINT or SIGTERM (g_unix_signal_add() resolves a
 *    future the main task awaits).
 * At the end the accept task is cancelled, so are the echo tasks still
 * running, and every socket is closed.
 */

#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_CLIENTS 3
#define N_LINES 3
#define LONG_MESSAGE_SIZE (1024 * 1024) /* sent by the last client */

/* This program's own error domain. */
#define ECHO_ERROR (g_quark_from_static_string ("echo-error"))
enum
{
  ECHO_ERROR_MISMATCH = 1
};

static AfutError *
errno_error (const char *what)
{
  int errsv = errno;

  return (AfutError *) g_error_new (G_IO_ERROR, g_io_error_from_errno (errsv),
                                    "%s: %s", what, g_strerror (errsv));
}

static gboolean
set_nonblocking (int fd)
{
  int flags = fcntl (fd, F_GETFL);

  return flags >= 0 && fcntl (fd, F_SETFL, flags | O_NONBLOCK) == 0
         && fcntl (fd, F_SETFD, FD_CLOEXEC) == 0;
}

/* ---- the server ---- */

typedef struct
{
  int listen_fd;
  guint16 port;
  GPtrArray *connections; /* the echo tasks still running */
  unsigned n_accepted;
  guint64 n_echoed; /* bytes */
} Server;

typedef struct
{
  AfutTask task;
  Server *server;
  int fd;
  char buffer[4096];
} Echo;

/* async def echo(reader, writer) */
static void
echo (AfutTask *task)
{
  Echo *self = (Echo *) task;
  int64_t n;

  AFUT_BEGIN (task);
  for (;;)
    {
      AFUT_AWAIT (task, afut_fd_read (self->fd, self->buffer,
                                      sizeof self->buffer));
      n = afut_future_get_int (afut_task_awaited (task));
      if (n == 0)
        break; /* the client closed its side */
      AFUT_AWAIT (task, afut_fd_write_all (self->fd, self->buffer,
                                           (size_t) n));
      /* n did not survive the await: write_all resolves with the size */
      self->server->n_echoed
        += (guint64) afut_future_get_int (afut_task_awaited (task));
    }
  AFUT_END (task);
}

/* However the echo task ended: close the socket, report an error. */
static void
echo_done (AfutFuture *future, void *data)
{
  Server *server = data;
  Echo *self = (Echo *) future;
  const AfutError *error = afut_future_get_error (future);

  if (error != NULL && !afut_error_is_cancelled (error))
    g_printerr ("%s: %s\n", afut_task_get_name (AFUT_TASK (future)),
                error->message);
  close (self->fd);
  g_ptr_array_remove_fast (server->connections, future); /* unrefs it */
}

static void
server_add_connection (Server *server, int fd)
{
  Echo init = { 0 };
  AfutFuture *echo_task;
  char name[32];

  server->n_accepted++;
  init.server = server;
  init.fd = fd;
  g_snprintf (name, sizeof name, "echo-%u", server->n_accepted);
  echo_task = afut_task_new (NULL, echo, sizeof init, &init, name, NULL);
  afut_future_add_done_callback (echo_task, echo_done, server);
  g_ptr_array_add (server->connections, echo_task);
}

typedef struct
{
  AfutTask task;
  Server *server;
} Acceptor;

/* while True: await readable; accept every connection waiting */
static void
accept_clients (AfutTask *task)
{
  Server *server = ((Acceptor *) task)->server;
  int fd;

  AFUT_BEGIN (task);
  for (;;)
    {
      AFUT_AWAIT (task, afut_fd_wait (server->listen_fd, AFUT_IO_IN));
      while ((fd = accept (server->listen_fd, NULL, NULL)) >= 0)
        {
          if (set_nonblocking (fd))
            server_add_connection (server, fd);
          else
            close (fd);
        }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
          && errno != ECONNABORTED)
        AFUT_THROW (task, errno_error ("accept"));
    }
  AFUT_END (task);
}

static gboolean
server_listen (Server *server, GError **error)
{
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;

  server->connections = g_ptr_array_new_with_free_func (
      (GDestroyNotify) afut_future_unref);
  server->listen_fd = socket (AF_INET, SOCK_STREAM, 0);
  if (server->listen_fd < 0)
    goto fail;
  memset (&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  addr.sin_port = htons (0); /* any free port */
  if (!set_nonblocking (server->listen_fd)
      || bind (server->listen_fd, (struct sockaddr *) &addr, sizeof addr) < 0
      || listen (server->listen_fd, SOMAXCONN) < 0
      || getsockname (server->listen_fd, (struct sockaddr *) &addr, &len) < 0)
    goto fail;
  server->port = ntohs (addr.sin_port);
  return TRUE;

fail:
  g_propagate_error (error, (GError *) errno_error ("cannot listen"));
  if (server->listen_fd >= 0)
    close (server->listen_fd);
  server->listen_fd = -1;
  return FALSE;
}

/* ---- the self-test's clients ---- */

typedef struct
{
  AfutTask task;
  guint16 port;
  unsigned id;
  int fd;
  GString *sent;
  GString *received;
  char line[64];
  char buffer[4096];
} Client;

typedef struct
{
  AfutTask task;
  Client *client;
  unsigned i;
} ClientHalf;

/* Writes the lines (and the long message), then closes the sending side:
 * the server sees the end of the stream once it has echoed everything. */
static void
client_write (AfutTask *task)
{
  ClientHalf *self = (ClientHalf *) task;
  Client *client = self->client;
  size_t n;

  AFUT_BEGIN (task);
  for (self->i = 1; self->i <= N_LINES; self->i++)
    {
      n = (size_t) g_snprintf (client->line, sizeof client->line,
                               "client %u, line %u\n", client->id, self->i);
      g_string_append_len (client->sent, client->line, (gssize) n);
      AFUT_AWAIT (task, afut_fd_write_all (client->fd, client->line, n));
    }
  if (client->id == N_CLIENTS - 1)
    {
      n = client->sent->len;
      for (self->i = 0; self->i < LONG_MESSAGE_SIZE; self->i++)
        g_string_append_c (client->sent, (char) ('a' + self->i % 26));
      AFUT_AWAIT (task, afut_fd_write_all (client->fd, client->sent->str + n,
                                           LONG_MESSAGE_SIZE));
    }
  if (shutdown (client->fd, SHUT_WR) < 0)
    AFUT_THROW (task, errno_error ("shutdown"));
  AFUT_END (task);
}

/* Reads the echo until the server closes the connection. */
static void
client_read (AfutTask *task)
{
  Client *client = ((ClientHalf *) task)->client;
  int64_t n;

  AFUT_BEGIN (task);
  for (;;)
    {
      AFUT_AWAIT (task, afut_fd_read (client->fd, client->buffer,
                                      sizeof client->buffer));
      n = afut_future_get_int (afut_task_awaited (task));
      if (n == 0)
        break;
      g_string_append_len (client->received, client->buffer, (gssize) n);
    }
  AFUT_END (task);
}

/* async def client(port, id): connect, send, read the echo back, check */
static void
client (AfutTask *task)
{
  Client *self = (Client *) task;
  struct sockaddr_in addr;
  socklen_t len;
  int err;

  AFUT_BEGIN (task);
  self->fd = socket (AF_INET, SOCK_STREAM, 0);
  if (self->fd < 0 || !set_nonblocking (self->fd))
    AFUT_THROW (task, errno_error ("socket"));
  memset (&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  addr.sin_port = htons (self->port);
  if (connect (self->fd, (struct sockaddr *) &addr, sizeof addr) < 0)
    {
      if (errno != EINPROGRESS)
        AFUT_THROW (task, errno_error ("connect"));
      /* A non-blocking connect() is done when the socket is writable;
       * SO_ERROR tells how it went. */
      AFUT_AWAIT (task, afut_fd_wait (self->fd, AFUT_IO_OUT));
      len = sizeof err;
      if (getsockopt (self->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        AFUT_THROW (task, errno_error ("getsockopt"));
      if (err != 0)
        {
          errno = err;
          AFUT_THROW (task, errno_error ("connect"));
        }
    }

  AFUT_AWAIT (task,
              afut_gather (AFUT_CORO (ClientHalf, client_write,
                                      .client = self),
                           AFUT_CORO (ClientHalf, client_read,
                                      .client = self),
                           NULL));
  if (!g_string_equal (self->sent, self->received))
    AFUT_THROW (task, afut_error_new (ECHO_ERROR, ECHO_ERROR_MISMATCH,
                                      "sent %zu bytes, got %zu back, not "
                                      "the same",
                                      self->sent->len, self->received->len));
  AFUT_RETURN_INT (task, (int64_t) self->sent->len);
  AFUT_END (task);
}

static void
client_finalize (AfutTask *task)
{
  Client *self = (Client *) task;

  if (self->fd >= 0)
    close (self->fd);
  g_string_free (self->sent, TRUE);
  g_string_free (self->received, TRUE);
}

static AfutFuture *
client_coro (guint16 port, unsigned id)
{
  Client init = { 0 };
  char name[32];

  init.port = port;
  init.id = id;
  init.fd = -1;
  init.sent = g_string_new (NULL);
  init.received = g_string_new (NULL);
  g_snprintf (name, sizeof name, "client-%u", id);
  return afut_coro_new (NULL, client, sizeof init, &init, name,
                        client_finalize);
}

/* ---- main ---- */

typedef struct
{
  AfutTask task;
  gboolean self_test;
  Server server;
  AfutFuture *acceptor;
  AfutFuture *stop;
  guint signal_sources[2];
  unsigned n_failed;
} Main;

static gboolean
on_signal (gpointer data)
{
  AfutFuture *stop = data;

  if (!afut_future_is_done (stop))
    afut_future_resolve (stop);
  return G_SOURCE_CONTINUE;
}

static void
amain (AfutTask *task)
{
  Main *self = (Main *) task;
  AfutFuture *clients;
  GError *error = NULL;
  size_t i;

  AFUT_BEGIN (task);
  if (!server_listen (&self->server, &error))
    AFUT_THROW (task, (AfutError *) error);
  self->acceptor = AFUT_SPAWN (Acceptor, accept_clients,
                               .server = &self->server);

  if (self->self_test)
    {
      printf ("echo server listening on 127.0.0.1 (a free port)\n");
      AFUT_AWAIT (task, afut_gather_return_exceptions (
                            client_coro (self->server.port, 0),
                            client_coro (self->server.port, 1),
                            client_coro (self->server.port, 2), NULL));
      clients = afut_task_awaited (task);
      for (i = 0; i < afut_gather_get_n_items (clients); i++)
        {
          AfutFuture *c = afut_gather_get_item (clients, i);
          const AfutError *e = afut_future_get_error (c);

          if (e != NULL)
            {
              printf ("%s: FAILED: %s\n", afut_task_get_name (AFUT_TASK (c)),
                      e->message);
              self->n_failed++;
            }
          else
            printf ("%s: %lld bytes echoed back intact\n",
                    afut_task_get_name (AFUT_TASK (c)),
                    (long long) afut_future_get_int (c));
        }
    }
  else
    {
      printf ("echo server listening on 127.0.0.1:%u (Ctrl-C stops it)\n",
              self->server.port);
      fflush (stdout);
      self->stop = afut_future_new (NULL);
      self->signal_sources[0] = g_unix_signal_add (SIGINT, on_signal,
                                                   self->stop);
      self->signal_sources[1] = g_unix_signal_add (SIGTERM, on_signal,
                                                   self->stop);
      AFUT_AWAIT (task, afut_future_ref (self->stop));
      g_source_remove (self->signal_sources[0]);
      g_source_remove (self->signal_sources[1]);
      g_clear_pointer (&self->stop, afut_future_unref);
      printf ("stopping, with %u connections open\n",
              self->server.connections->len);
    }

  /* Closing: no more connections, then the ones still open go (none
   * after the self-test: each client waited for its echo to end). */
  afut_future_cancel (self->acceptor, NULL);
  AFUT_AWAIT_TRY (task, self->acceptor);
  self->acceptor = NULL;
  printf ("server: the accept task is %s\n",
          afut_future_state_to_string (
            afut_future_get_state (afut_task_awaited (task))));
  close (self->server.listen_fd);
  for (i = 0; i < self->server.connections->len; i++)
    afut_future_cancel (self->server.connections->pdata[i], NULL);
  AFUT_AWAIT (task, afut_gather_return_exceptions_v (
                        (AfutFuture *const *) self->server.connections->pdata,
                        self->server.connections->len));

  /* Each echo task's done callback closed its socket and took it off the
   * list. */
  printf ("server: %u connections, %llu bytes echoed, %u still open\n",
          self->server.n_accepted,
          (unsigned long long) self->server.n_echoed,
          self->server.connections->len);
  g_ptr_array_unref (self->server.connections);
  printf ("tasks left besides main: %zu\n",
          afut_loop_get_n_tasks (afut_loop_get_running ()) - 1);
  if (self->n_failed > 0)
    AFUT_THROW (task, afut_error_new (ECHO_ERROR, ECHO_ERROR_MISMATCH,
                                      "%u clients failed", self->n_failed));
  AFUT_END (task);
}

int
main (int argc, char **argv)
{
  gboolean self_test = argc == 2 && strcmp (argv[1], "--self-test") == 0;

  if (argc > 2 || (argc == 2 && !self_test))
    {
      g_printerr ("usage: %s [--self-test]\n", argv[0]);
      return 2;
    }
  /* A client gone mid-echo makes write() fail with EPIPE, not kill us. */
  signal (SIGPIPE, SIG_IGN);
  return AFUT_RUN (Main, amain, .self_test = self_test);
}
