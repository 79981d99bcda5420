/* herald's options: defaults, the --config file, the command line, --help,
 * the sample config and what a reload (SIGHUP) may change.  The config_t
 * they fill is declared in base/config.h so that every layer can read it. */
#ifndef HERALD_OPTIONS_H
#define HERALD_OPTIONS_H

#include "config.h"

#include <stddef.h>

/**
 * Fill `cfg` from defaults, then the --config file if any, then argv.
 * Returns 0; 1 when --help or --version was printed (exit 0); 2 after
 * printing a clear message to stderr (exit 2).
 */
int config_load(config_t *cfg, int argc, char **argv);
/** Print every option with its default and help to `out` (a FILE *). */
void config_print_help(void *out);
/**
 * SIGHUP: list the options that differ between a (running) and b (just
 * read) as comma-separated names, those applied on reload into
 * reloaded[rlen] and those that need a restart into restart[slen].
 * Returns how many differ.
 */
size_t config_diff(const config_t *a, const config_t *b, char *reloaded, size_t rlen, char *restart,
                   size_t slen);
/**
 * Copy src into dst except the restart-only options (origin, listen,
 * workers, origin-max-connections, origin-queue, max-pages,
 * max-assets-per-page, admin, state, state-interval, shared-map*).
 */
void config_apply_reload(config_t *dst, const config_t *src);
/** Print a config file with every option commented out at its default (a FILE *). */
void config_print_sample(void *out);
#endif
