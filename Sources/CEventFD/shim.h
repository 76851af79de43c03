#ifndef OUTBOX_CEVENTFD_SHIM_H
#define OUTBOX_CEVENTFD_SHIM_H
/* Glibc's Swift module lacks eventfd. */
#include <sys/eventfd.h>
#endif
