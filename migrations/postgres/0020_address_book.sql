-- The address book (store/src/address_book.rs): a practice's own people are
-- found by practice, and the practices a person is a contact of by person, so
-- a suggestion while typing reads only the rows that concern the viewer.
CREATE INDEX users_practice ON users (practice_id);
CREATE INDEX contacts_user ON contacts (user_id);
