mod harness;
mod portal_access;
mod secure_send;
mod smtp_refusals;
