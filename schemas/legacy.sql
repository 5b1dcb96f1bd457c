-- The legacy single-clinic tables, exactly as the application (Prisma)
-- created them (docs/design.md §1). Used by the tests, the demo and rehearsals as
-- the source database; clinicmig never writes to them.
CREATE TABLE IF NOT EXISTS "Clinic" (
  "id"        integer PRIMARY KEY,
  "name"      text NOT NULL,
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  "updatedAt" timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS "User" (
  "id"             integer PRIMARY KEY,
  "clinicId"       integer NOT NULL,
  "email"          text NOT NULL,
  "phone"          text,
  "firstName"      text NOT NULL,
  "lastName"       text NOT NULL,
  "role"           text NOT NULL,
  "specialization" text,
  "licenseNumber"  text,
  "isActive"       boolean NOT NULL DEFAULT true,
  "createdAt"      timestamptz NOT NULL DEFAULT now(),
  "updatedAt"      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS "Patient" (
  "id"         integer PRIMARY KEY,
  "clinicId"   integer NOT NULL,
  "firstName"  text NOT NULL,
  "lastName"   text NOT NULL,
  "middleName" text,
  "birthDate"  date,
  "gender"     text,
  "phone"      text,
  "email"      text,
  "createdAt"  timestamptz NOT NULL DEFAULT now(),
  "updatedAt"  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS "Appointment" (
  "id"        integer PRIMARY KEY,
  "clinicId"  integer NOT NULL,
  "doctorId"  integer NOT NULL,
  "patientId" integer NOT NULL,
  "startsAt"  timestamptz NOT NULL,
  "endsAt"    timestamptz NOT NULL,
  "status"    text NOT NULL,
  "reason"    text,
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  "updatedAt" timestamptz NOT NULL DEFAULT now()
);
