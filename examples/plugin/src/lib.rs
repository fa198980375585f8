//! The classic plugin: allocates with `malloc` through the `libc` crate, prints, and spawns a
//! thread. A host calls `plugin_entry` after `dlopen(path, RTLD_NOW)`; 0 means all went well.

use std::ffi::c_int;
use std::thread;

#[no_mangle]
pub extern "C" fn plugin_entry() -> c_int {
    // SAFETY: malloc/free pair on a buffer we own; checked for null before use.
    let buffer = unsafe { libc::malloc(64) as *mut u8 };
    if buffer.is_null() {
        return 1;
    }
    unsafe {
        buffer.write_bytes(7, 64);
    }
    let sum: u32 = (0..64).map(|i| unsafe { *buffer.add(i) } as u32).sum();
    unsafe { libc::free(buffer.cast()) };

    let worker = thread::spawn(move || sum * 2);
    match worker.join() {
        Ok(doubled) => {
            println!("example-plugin: hello from the plugin, thread computed {doubled}");
            if doubled == 896 { 0 } else { 2 }
        }
        Err(_) => 3,
    }
}
