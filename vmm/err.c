// SPDX-License-Identifier: Apache-2.0
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int err_set(msvmm_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return -code;
}

int err_from_errno(int e)
{
	switch (e) {
	case ENOENT: case ENOTDIR: return MSVMM_ENOENT;
	case EACCES: case EPERM: return MSVMM_EACCES;
	case ENOMEM: return MSVMM_ENOMEM;
	case EINVAL: return MSVMM_EINVAL;
	case ETIMEDOUT: return MSVMM_ETIMEDOUT;
	case ECONNREFUSED: return MSVMM_ECONNREFUSED;
	default: return MSVMM_EIO;
	}
}

const char *msvmm_strerror(int code)
{
	if (code < 0)
		code = -code;
	switch (code) {
	case MSVMM_OK: return "success";
	case MSVMM_EINVAL: return "invalid argument";
	case MSVMM_ENOMEM: return "out of memory";
	case MSVMM_ENOENT: return "not found";
	case MSVMM_EACCES: return "permission denied";
	case MSVMM_EKVM: return "KVM error";
	case MSVMM_EFORMAT: return "malformed file";
	case MSVMM_EGUEST: return "guest failure";
	case MSVMM_EIO: return "I/O error";
	case MSVMM_ETIMEDOUT: return "timed out";
	case MSVMM_ESTOPPED: return "stopped";
	case MSVMM_ECONNREFUSED: return "connection refused";
	default: return "internal error";
	}
}
