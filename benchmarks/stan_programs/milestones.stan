// The jdmbayes milestone model (src/jdmbayes/models/milestones.py), written independently in
// Stan for the benchmark peer and the agreement check: ordered gap times, AFT family,
// reference-coded group effects, drug-by-dose cell deviations (non-centred, or confined to
// the interaction directions: deviation = basis * w, w ~ normal(0, sigma_cell)), shared patient
// frailty (centred or non-centred), exact / right / interval-censored gaps. No latent
// interval-censored middle milestones (the bundled series has none).
functions {
  // log S and log f of a gap with log-time location eta and scale s
  real aft_log_survival(int family, real log_t, real eta, real s) {
    real z = (log_t - eta) / s;
    if (family == 1) return -exp(z);
    if (family == 2) return normal_lccdf(z | 0, 1);
    return -log1p_exp(z);
  }
  real aft_log_density(int family, real log_t, real eta, real s) {
    real z = (log_t - eta) / s;
    real core;
    if (family == 1) core = z - exp(z);
    else if (family == 2) core = std_normal_lpdf(z);
    else core = z - 2 * log1p_exp(z);
    return core - log(s) - log_t;
  }
}
data {
  int<lower=1, upper=3> family;     // 1 weibull, 2 lognormal, 3 loglogistic
  int<lower=1> N;                   // patients
  int<lower=1> K;                   // milestones
  int<lower=0> E;                   // group main effects
  int<lower=1> C;                   // drug-by-dose cells
  matrix[N, E] x_group;
  array[N] int<lower=1, upper=C> cell;
  int<lower=0, upper=1> interaction;   // cell deviations = basis * w
  int<lower=0> Q;
  matrix[C, Q] basis;                  // orthonormal, orthogonal to intercept and main effects
  int<lower=0> M;                   // gap observations
  array[M] int<lower=1, upper=N> patient;
  array[M] int<lower=1, upper=K> outcome;
  array[M] int<lower=0, upper=4> kind;   // 0 exact, 1 right, 2 interval, 4 none
  vector[M] lo;
  vector[M] hi;
  vector[M] origin;
  int<lower=0, upper=1> centred;
  real intercept_mu;
  real<lower=0> intercept_sigma;
  real dispersion_mu;
  real<lower=0> dispersion_sigma;
  real beta_mu;
  real<lower=0> beta_sigma;
  real<lower=0> sigma_cell_sigma;
  real<lower=0> sigma_patient_sigma;
}
transformed data {
  int has_cells = C > 1;
  int has_frailty = K > 1;
}
parameters {
  vector[K] intercept;
  vector<lower=0>[K] dispersion;
  vector[E] beta_group;
  array[has_cells] real<lower=0> sigma_cell;
  vector[has_cells && !interaction ? C : 0] z_cell;
  vector[has_cells && interaction ? Q : 0] w;
  array[has_frailty] real<lower=0> sigma_patient;
  vector[has_frailty ? N : 0] frailty_raw;   // frailty (centred) or z_patient (non-centred)
}
transformed parameters {
  vector[N] base = x_group * beta_group;
  if (has_cells && interaction) base += (basis * w)[cell];
  else if (has_cells) base += sigma_cell[1] * z_cell[cell];
  if (has_frailty) base += centred ? frailty_raw : sigma_patient[1] * frailty_raw;
}
model {
  intercept ~ normal(intercept_mu, intercept_sigma);
  dispersion ~ lognormal(dispersion_mu, dispersion_sigma);
  beta_group ~ normal(beta_mu, beta_sigma);
  if (has_cells) {
    sigma_cell ~ normal(0, sigma_cell_sigma);
    if (interaction) w ~ normal(0, sigma_cell[1]);
    else z_cell ~ std_normal();
  }
  if (has_frailty) {
    sigma_patient ~ normal(0, sigma_patient_sigma);
    if (centred) frailty_raw ~ normal(0, sigma_patient[1]);
    else frailty_raw ~ std_normal();
  }
  for (m in 1:M) {
    real eta;
    real s;
    real log_gap;
    if (kind[m] == 4) continue;
    eta = base[patient[m]] + intercept[outcome[m]];
    s = dispersion[outcome[m]];
    log_gap = log(hi[m] - origin[m]);
    if (kind[m] == 0) {
      target += aft_log_density(family, log_gap, eta, s);
    } else if (kind[m] == 1) {
      target += aft_log_survival(family, log_gap, eta, s);
    } else {
      real s_hi = aft_log_survival(family, log_gap, eta, s);
      real s_lo = 0;
      if (lo[m] > origin[m]) s_lo = aft_log_survival(family, log(lo[m] - origin[m]), eta, s);
      target += s_lo + log1m_exp(s_hi - s_lo);
    }
  }
}
