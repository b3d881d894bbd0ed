-- The example app's own tables: what the seed's server actions work on.
CREATE TABLE projects (
    id         BIGSERIAL PRIMARY KEY,
    owner_id   VARCHAR(128) NOT NULL,
    name       VARCHAR(100) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE newsletter_subscribers (
    email         VARCHAR(255) PRIMARY KEY,
    subscribed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
