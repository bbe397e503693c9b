//! Who may open the pipe: the current user and SYSTEM, from the process token.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::{HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, PSECURITY_DESCRIPTOR, PSID, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
    TokenUser,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// Memory allocated by Windows with `LocalAlloc` (what the SDDL and SID conversions return),
/// freed on drop. Only [`LocalBox::from_raw`] makes one: the pointer must be one that `Drop`
/// may free.
#[derive(Debug)]
pub(crate) struct LocalBox<T>(*mut T);

impl<T> LocalBox<T> {
    /// Takes ownership of `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` was returned by a Windows function documented to allocate it with `LocalAlloc` and
    /// to leave freeing it to the caller, nothing else frees it, and it is not written to after
    /// this call (the `Send`/`Sync` impls rely on that).
    pub(crate) unsafe fn from_raw(ptr: *mut T) -> LocalBox<T> {
        LocalBox(ptr)
    }

    pub(crate) fn as_ptr(&self) -> *mut T {
        self.0
    }
}

impl<T> Drop for LocalBox<T> {
    fn drop(&mut self) {
        // SAFETY: `from_raw`'s contract: the pointer is LocalAlloc'ed, owned, and freed only
        // here.
        unsafe { LocalFree(self.0.cast()) };
    }
}

// SAFETY: the memory belongs to the process heap, not to a thread, and is not written after
// `from_raw` (its contract), so moving it to another thread is sound wherever moving a `T` is.
unsafe impl<T: Send> Send for LocalBox<T> {}
// SAFETY: as above: read-only after creation, so shared references are sound wherever a `&T`
// may be shared.
unsafe impl<T: Sync> Sync for LocalBox<T> {}

/// The user the process runs as, as recorded in its token.
pub(crate) struct TokenUserInfo {
    /// A `TOKEN_USER` followed by the SID it points to; `u64`s for the struct's alignment.
    buf: Vec<u64>,
}

impl TokenUserInfo {
    /// Reads the `TokenUser` information of the process token (not of an impersonated thread).
    pub(crate) fn current() -> io::Result<TokenUserInfo> {
        // SAFETY: `GetCurrentProcess` returns a pseudo-handle that needs no closing and is
        // valid for the whole call.
        Self::of_process(unsafe { GetCurrentProcess() })
    }

    /// Reads the `TokenUser` information of the token of `process`, a handle open with at
    /// least `PROCESS_QUERY_LIMITED_INFORMATION` access (or the current-process pseudo-handle).
    pub(crate) fn of_process(process: HANDLE) -> io::Result<TokenUserInfo> {
        let mut raw: HANDLE = ptr::null_mut();
        // SAFETY: `process` is a valid process handle for the call, and `raw` is a valid place
        // for the token handle.
        if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut raw) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `OpenProcessToken` succeeded, so `raw` is an open handle owned by nobody else.
        let token = unsafe { OwnedHandle::from_raw_handle(raw) };

        let mut len = 0u32;
        // SAFETY: a size query: no buffer, `len` receives the size needed. It "fails" with
        // ERROR_INSUFFICIENT_BUFFER by design; a zero `len` means it failed for real.
        unsafe {
            GetTokenInformation(token.as_raw_handle(), TokenUser, ptr::null_mut(), 0, &mut len)
        };
        if len == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u64; (len as usize).div_ceil(size_of::<u64>())];
        // SAFETY: `buf` is writable for at least `len` bytes and aligned for `TOKEN_USER`.
        let ok = unsafe {
            GetTokenInformation(
                token.as_raw_handle(),
                TokenUser,
                buf.as_mut_ptr().cast(),
                len,
                &mut len,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TokenUserInfo { buf })
    }

    /// The user's SID. Points into `self`; valid while `self` lives.
    pub(crate) fn sid(&self) -> PSID {
        // SAFETY: `buf` holds the `TOKEN_USER` that `GetTokenInformation` wrote, suitably
        // aligned; its `Sid` points into the same (heap) buffer, which does not move.
        unsafe { (*self.buf.as_ptr().cast::<TOKEN_USER>()).User.Sid }
    }

    /// The user's SID in string form (`S-1-5-21-...`).
    pub(crate) fn sid_string(&self) -> io::Result<String> {
        // SAFETY: `sid()` points into `self`, which outlives the call.
        unsafe { sid_to_string(self.sid()) }
    }
}

/// `S-1-...` for a SID.
///
/// # Safety
///
/// `sid` points to a valid SID that stays valid for the call.
pub(crate) unsafe fn sid_to_string(sid: PSID) -> io::Result<String> {
    let mut wide = ptr::null_mut();
    // SAFETY: `sid` is valid (this function's contract); `wide` receives a LocalAlloc'ed,
    // NUL-terminated string.
    if unsafe { ConvertSidToStringSidW(sid, &mut wide) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: LocalAlloc'ed by the conversion, ours to free, never written.
    let wide = unsafe { LocalBox::from_raw(wide) };
    // SAFETY: the string is NUL-terminated, so every unit up to the NUL is readable.
    let units = unsafe {
        let len = (0..).take_while(|&i| *wide.as_ptr().add(i) != 0).count();
        std::slice::from_raw_parts(wide.as_ptr(), len)
    };
    String::from_utf16(units).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The SID of the user this process runs as, in string form (`S-1-5-21-...`), read from the
/// process token. Unique per account and not settable by the user (unlike `%USERNAME%`), which
/// makes it the part of a per-user pipe name that two users cannot share.
pub fn current_user_sid() -> io::Result<String> {
    TokenUserInfo::current()?.sid_string()
}

/// The security descriptor every instance of a bunctl pipe is created with.
#[derive(Debug)]
pub(crate) struct PipeSecurity {
    /// A self-relative descriptor, as built by the SDDL conversion.
    descriptor: LocalBox<core::ffi::c_void>,
}

impl PipeSecurity {
    /// Owned by the current user, with a protected DACL (nothing inherited) with two entries,
    /// both full access: the current user and SYSTEM. Everyone else — other users, and
    /// anonymous or network logons — has no entry and so no access, not even to create an
    /// instance of the name. The owner is set explicitly (not left to the token's default
    /// owner, which is the Administrators group for an elevated administrator) so that a
    /// client can tell whose pipe it reached from the owner alone.
    pub(crate) fn current_user_only() -> io::Result<PipeSecurity> {
        let me = current_user_sid()?;
        let sddl = format!("O:{me}D:P(A;;GA;;;SY)(A;;GA;;;{me})");
        let wide: Vec<u16> = sddl.encode_utf16().chain(Some(0)).collect();
        let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
        // SAFETY: `wide` is NUL-terminated; `descriptor` receives a LocalAlloc'ed descriptor;
        // the size output is optional.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: LocalAlloc'ed by the conversion, ours to free, never written.
        Ok(PipeSecurity { descriptor: unsafe { LocalBox::from_raw(descriptor) } })
    }

    /// Attributes pointing at the descriptor; valid while `self` lives. Handles are not
    /// inherited by child processes.
    pub(crate) fn attributes(&self) -> SECURITY_ATTRIBUTES {
        SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.descriptor.as_ptr(),
            bInheritHandle: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_user_sid_is_a_user_sid_string() {
        let sid = current_user_sid().expect("token user");
        assert!(sid.starts_with("S-1-5-"), "{sid}");
        assert_eq!(TokenUserInfo::current().expect("token").sid_string().expect("string"), sid);
    }

    #[test]
    fn descriptor_builds_from_the_token_user() {
        let security = PipeSecurity::current_user_only().expect("descriptor");
        let attrs = security.attributes();
        assert!(!attrs.lpSecurityDescriptor.is_null());
        assert_eq!(attrs.bInheritHandle, 0);
    }
}
